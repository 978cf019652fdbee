#pragma once
// Worker side of the data plane: one slot of a segment received from the server as an fd.
// One thread per WorkerSegment.
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "shm/layout.hpp"
#include "shm/result.hpp"
#include "shm/wait_counters.hpp"

namespace hostq::shm {

class WorkerSegment {
 public:
  static constexpr std::chrono::milliseconds kSafetyNetWait{1000};

  /// Maps the segment behind `fd` (not taken over: the caller may close it afterwards) and
  /// validates it: size (fstat) >= header, magic, layout version, ring/record geometry, size ==
  /// header geometry, generation == expectedGeneration, slot < capacity, slot Active and reset
  /// for this pid.
  static Result<WorkerSegment> attach(int fd, std::uint32_t slot,
                                      std::uint64_t expectedGeneration) noexcept;

  WorkerSegment(WorkerSegment&&) noexcept;
  WorkerSegment& operator=(WorkerSegment&&) noexcept;
  ~WorkerSegment();

  /// Publishes a request; rings the server doorbell if the server announced it sleeps, unless
  /// `wake` is false (a result the worker does not wait on: the server takes it on its next
  /// pass, at the latest with the Reserve that follows it, or is woken once the request ring is
  /// half full).
  [[nodiscard]] PushResult pushRequest(std::span<const std::byte> payload, bool wake = true) noexcept;
  /// Rings the server's doorbell if it sleeps and no reply waits in this slot's ring: a request
  /// pushed quietly is served now. A server that went to sleep after a quiet push had seen it
  /// (it re-checks the pending bits after announcing its sleep), so only a push made while it
  /// already slept waits for this. One load when the server is awake.
  void nudgeServer() noexcept;
  /// Copies the next reply into `out` (size it kReplyPayloadMax).
  [[nodiscard]] PopResult popReply(std::span<std::byte> out, std::size_t& len) noexcept;
  /// Returns Ready when a reply may be there, TimedOut, Interrupted (EINTR), or Closed (slot
  /// released or segment retired). Spins first (adaptive budget) unless the server is asleep
  /// or cores - 1 workers already spin, then sleeps on the reply ring's tail.
  WaitOutcome waitForReply(std::chrono::nanoseconds timeout) noexcept;

  /// True once this segment is no longer served: the server retired it, or the server process
  /// that created it has exited (pidfd). Stop using it; re-register and attach the new one.
  bool generationChanged() const noexcept;
  /// True when the server released this slot, or generationChanged().
  bool closed() const noexcept;
  /// The part of closed() that reads shared memory only: the slot released or the segment
  /// retired. For the hand-off path, where a syscall per job (the pidfd poll) costs more than
  /// the hand-off itself; a server that died is noticed by waitForReply()'s safety net and by
  /// the control socket's EOF.
  bool released() const noexcept;

  /// Publishes the job the worker starts now (0 once its result is in the ring): what the server
  /// reads, should this process die, to tell the job it was running from jobs it had not begun.
  void markStarted(std::uint64_t job) noexcept;

  std::uint64_t generation() const noexcept;
  std::uint32_t slot() const noexcept;
  const WaitCounters& counters() const noexcept;
  std::uint32_t spinBudget() const noexcept;

 private:
  struct Impl;
  explicit WorkerSegment(std::unique_ptr<Impl> impl) noexcept;
  void ringIfAsleep() noexcept;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace hostq::shm
