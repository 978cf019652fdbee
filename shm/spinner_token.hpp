#pragma once
// Cap on concurrently spinning workers (header.spinners), so that with cores - 1 worker
// spinners at most, the server always keeps a CPU (ipc-limits.md: uncapped spinning gave a
// 12-16 ms p99.9 at 8 workers on 2 vCPUs).
//
// Death safety: a worker announces workerSpinning *before* taking a token and clears it only
// *after* returning it, so a worker killed anywhere in between leaves the flag set and the
// server's reclaim gives the token back. A death just before the CAS or just after the release
// makes the reclaim return a token that was not held; release and reclaim saturate at zero, so
// that error lets one extra spinner in until the count drains, and never leaks a token for good.
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "shm/layout.hpp"

namespace hostq::shm {

namespace detail {
inline void saturatingDecrement(std::atomic<std::uint32_t>& c) noexcept {
  std::uint32_t n = c.load(std::memory_order_relaxed);
  while (n != 0 && !c.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
  }
}
}  // namespace detail

/// @param localCap this process's own view of cores - 1; the header value is untrusted input
///        for workers too (written by the server, but bounded here anyway).
[[nodiscard]] inline bool acquireSpinnerToken(SlotLayout& slot, SegmentHeader& h,
                                              std::uint32_t localCap) noexcept {
  const std::uint32_t cap = std::min(h.maxSpinners, localCap);
  if (cap == 0) return false;
  slot.workerSpinning.store(1, std::memory_order_relaxed);
  std::uint32_t n = h.spinners.load(std::memory_order_relaxed);
  // relaxed: the counter only limits how many spin; it guards no data.
  while (n < cap)
    if (h.spinners.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
  slot.workerSpinning.store(0, std::memory_order_relaxed);
  return false;
}

inline void releaseSpinnerToken(SlotLayout& slot, SegmentHeader& h) noexcept {
  detail::saturatingDecrement(h.spinners);
  slot.workerSpinning.store(0, std::memory_order_relaxed);
}

/// Server side, when the slot's worker is gone.
inline void reclaimSpinnerToken(SlotLayout& slot, SegmentHeader& h) noexcept {
  if (slot.workerSpinning.exchange(0, std::memory_order_relaxed) != 0)
    detail::saturatingDecrement(h.spinners);
}

}  // namespace hostq::shm
