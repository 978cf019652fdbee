#pragma once
// Spin-then-sleep policy for one waiter (ipc-limits.md, "Spin budget"). On this 2-vCPU VM a
// futex hand-off to an idle vCPU costs ~30 µs per hop against ~0.2 µs for a cache-line hand-off,
// so spinning pays exactly when the peer is on a CPU and answers within the budget. The budget
// is learned per waiter between ~0.2 µs and 20 µs: halved after a failed spin, raised to cover
// a successful one, and raised after a sleep whose wake-up was expensive although the event
// came soon enough that a spin would have caught it.
#include <cstdint>

#include "common/monotonic_clock.hpp"

namespace hostq::shm {

inline void cpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// Cost of one cpuRelax(), measured once per process (10 ns here, ~40 ns on Skylake-class
/// parts: a budget counted in pauses would otherwise mean different times on different hosts).
double pauseNanos() noexcept;

/// CPUs this process may run on (sched_getaffinity), at least 1.
unsigned usableCpus() noexcept;

class AdaptiveSpin {
 public:
  static constexpr std::uint64_t kMinSpinNs = 200;
  /// A spin longer than a futex round trip buys nothing and keeps a CPU from PostgreSQL and the
  /// server: 200 µs gave the same hand-off p50 and a worse p99 and worker CPU than 20 µs
  /// (docs/performance.md, "hostq's own CPU per job").
  static constexpr std::uint64_t kMaxSpinNs = 20'000;
  static constexpr std::uint64_t kInitialSpinNs = 10'000;
  /// A wake-up slower than this means the sleeper's CPU had gone idle (HLT exit + IPI).
  static constexpr std::uint64_t kExpensiveWakeNs = 10'000;

  AdaptiveSpin() noexcept;

  /// Current budget in cpuRelax() iterations.
  std::uint32_t budget() const noexcept { return m_budget; }
  void onSpinSuccess(std::uint32_t spins) noexcept;
  void onSpinFailure() noexcept;
  /// After a futex sleep: `postedNs` is the waker's stamp (untrusted: ignored unless it lies
  /// between the start of the wait and now).
  void afterSleep(std::uint64_t waitStartNs, std::uint64_t postedNs, std::uint64_t nowNs) noexcept;

 private:
  std::uint32_t m_budget;
  std::uint32_t m_min;
  std::uint32_t m_max;
  double m_pauseNs;
};

}  // namespace hostq::shm
