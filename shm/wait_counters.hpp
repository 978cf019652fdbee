#pragma once
// Per-waiter statistics. Owned by the one thread that waits on that side, so plain integers.
#include <cstdint>

namespace hostq::shm {

struct WaitCounters {
  std::uint64_t spinSuccesses = 0;  ///< waits satisfied while spinning
  std::uint64_t spinFailures = 0;   ///< spins that ran out of budget
  std::uint64_t spinSkipped = 0;    ///< waits that slept at once (peer asleep, no spinner token)
  std::uint64_t spinPauses = 0;     ///< cpuRelax() iterations in total
  std::uint64_t futexWaits = 0;     ///< FUTEX_WAIT calls
  std::uint64_t futexWakes = 0;     ///< FUTEX_WAKE calls issued to the peer
  std::uint64_t futexTimeouts = 0;  ///< FUTEX_WAIT expiries (safety net or caller timeout)
  /// FUTEX_WAIT expiries after which the re-check found work: a wake-up that should have come
  /// and did not. Non-zero means a lost wake-up (or work posted within ~1 µs of the expiry).
  std::uint64_t wakeMisses = 0;
  std::uint64_t interrupted = 0;    ///< EINTR returns
};

}  // namespace hostq::shm
