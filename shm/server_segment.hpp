#pragma once
// Server side of the data plane: creates the segment, owns every slot's lifecycle, consumes
// requests and produces replies. Nothing the workers write is trusted (see layout.hpp).
//
// Threading: one server-loop thread calls everything except ringServerDoorbell() /
// ServerDoorbell::ring(), which any thread of the server process may call at any time.
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "shm/layout.hpp"
#include "shm/mapped_region.hpp"
#include "shm/result.hpp"
#include "shm/wait_counters.hpp"

namespace hostq::shm {

/// Copyable handle that wakes the server loop; safe from any thread while the segment lives.
class ServerDoorbell {
 public:
  explicit ServerDoorbell(SegmentHeader* header) noexcept : m_header(header) {}
  /// Makes the server's current or next waitForWork() return Ready. Always issues FUTEX_WAKE
  /// (~0.15 µs): it is for control-plane events, not the per-request path.
  void ring() const noexcept;

 private:
  SegmentHeader* m_header;
};

class ServerSegment {
 public:
  static constexpr std::uint32_t kMaxSlots = kMaxSlotCount;
  /// Upper bound of one FUTEX_WAIT: a lost wake-up costs at most this, and shows in the
  /// futexTimeouts counter.
  static constexpr std::chrono::milliseconds kSafetyNetWait{1000};

  /// Creates a zeroed, sealed memfd segment with `slotCount` Free slots and a fresh random
  /// generation. Errors: BadSlot (0 or > kMaxSlots), SystemError.
  static Result<ServerSegment> create(std::uint32_t slotCount) noexcept;

  ServerSegment(ServerSegment&&) noexcept;
  ServerSegment& operator=(ServerSegment&&) noexcept;
  /// Retires the segment (wakes every sleeping worker with Closed), unmaps, closes the fd.
  ~ServerSegment();

  /// The memfd to send to a worker with SCM_RIGHTS. Owned by this object.
  int fd() const noexcept;
  std::uint64_t generation() const noexcept;
  std::uint32_t capacity() const noexcept;

  /// Makes `slot` ready for a new worker: indices zeroed, stale flags and spinner token of a
  /// previous (dead) owner cleared, state Active for `workerPid`.
  /// @pre no live process uses the slot (the previous worker is dead or was never attached).
  void resetSlot(std::uint32_t slot, pid_t workerPid) noexcept;
  /// Marks `slot` Free and wakes its worker if it sleeps (its wait returns Closed). Use after
  /// Corrupt, on disconnect, or on death; resetSlot() before reuse.
  void releaseSlot(std::uint32_t slot) noexcept;
  /// Active slots, dense, in no particular order; invalidated by resetSlot/releaseSlot.
  std::span<const std::uint32_t> activeSlots() const noexcept;
  bool isActive(std::uint32_t slot) const noexcept;
  /// What the slot's worker last wrote to `startedJob` (0 for a slot out of range): read once
  /// the worker is gone, before releaseSlot(). Untrusted.
  std::uint64_t startedJob(std::uint32_t slot) const noexcept;

  /// Copies the next request of `slot` into `out`. Corrupt: the worker broke the ring (index or
  /// length out of range); nothing was read out of bounds; release the slot and drop the worker.
  [[nodiscard]] PopResult popRequest(std::uint32_t slot, std::span<std::byte> out,
                                     std::size_t& len) noexcept;
  /// Publishes a reply to `slot` and wakes its worker if it announced it sleeps.
  [[nodiscard]] PushResult pushReply(std::uint32_t slot, std::span<const std::byte> payload) noexcept;
  /// Reply records `slot` has room for now (0 for an inactive slot): what a reply of several
  /// records may use. Only grows until the next pushReply (the worker frees records).
  std::uint32_t replyRecordsFree(std::uint32_t slot) noexcept;
  /// True if some active slot has a request (or a corrupt ring) waiting.
  bool anyRequestPending() const noexcept;
  /// Takes the request flags: appends to `out` the active slots that published a request since
  /// the last take, starting one flagged slot further on each call so that no slot is always
  /// read first. A slot left with records (the caller bounds its pops per pass) must be flagged
  /// again with markPending.
  void takePendingSlots(std::vector<std::uint32_t>& out) noexcept;
  void markPending(std::uint32_t slot) noexcept;

  /// Blocks until a request may be pending in some active slot or the doorbell was rung since
  /// the previous return, at most `timeout`. Spins first (adaptive budget) if some worker is
  /// awake, then sleeps on the doorbell. Ready may be spurious: scan, then wait again.
  /// Contract for other event sources: drain them after every return; a ring that happens
  /// after this returns makes the next call return at once.
  WaitOutcome waitForWork(std::chrono::nanoseconds timeout) noexcept;

  void ringServerDoorbell() const noexcept;
  ServerDoorbell doorbell() const noexcept;

  /// Announces that this segment is no longer served (workers' generationChanged() turns true)
  /// and wakes all sleeping workers. Idempotent; the destructor calls it.
  void retire() noexcept;

  const WaitCounters& counters() const noexcept;
  /// Current adaptive spin budget in pauses (for tests and diagnostics).
  std::uint32_t spinBudget() const noexcept;

 private:
  struct Impl;
  explicit ServerSegment(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace hostq::shm
