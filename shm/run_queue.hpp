#pragma once
// How many tasks the host has runnable right now, so that a waiter spins only when a core is to
// spare. Spinning on a CPU that another runnable task wants (PostgreSQL, another worker, the
// server) delays that task by up to a scheduler slice: on a 2-core host the hand-off's tail was
// spinners sitting on the cores the reply depended on.
//
// The kernel's nr_running is the fourth field of /proc/loadavg ("0.71 1.72 2.20 3/345 1234":
// 3 runnable, this reader included). pread on a kept fd re-generates the file (~1-2 µs), so the
// server samples it at most once a millisecond and publishes it in the segment header.
#include <cstdint>
#include <string_view>

#include "shm/mapped_region.hpp"

namespace hostq::shm {

/// The runnable count of a /proc/loadavg text, or 0 when it does not parse (0 = unknown).
std::uint32_t parseRunnable(std::string_view loadavg) noexcept;

class RunQueueSampler {
 public:
  static constexpr std::uint64_t kPeriodNs = 1'000'000;

  RunQueueSampler() noexcept;
  /// The runnable count, re-read when the last reading is older than kPeriodNs; 0 = unknown
  /// (no /proc).
  std::uint32_t sample(std::uint64_t nowNs) noexcept;

 private:
  UniqueFd m_fd;
  std::uint64_t m_nextNs = 0;
  std::uint32_t m_last = 0;
};

}  // namespace hostq::shm
