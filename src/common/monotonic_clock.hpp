#pragma once
// The one monotonic clock read in nanoseconds. Header-only and dependency-free so that the shm
// library can use it too. A raw integer rather than std::chrono::steady_clock because the value
// crosses process boundaries (shared memory, the Reserve frame): CLOCK_MONOTONIC is the same clock
// for every process on the host, and a u64 has one layout everywhere.
#include <time.h>

#include <cstdint>

namespace hostq {

/// CLOCK_MONOTONIC in ns (a vDSO call, ~17 ns): never goes back, not affected by clock changes.
inline std::uint64_t monotonicNs() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace hostq
