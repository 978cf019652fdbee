#include "shm/worker_segment.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>

#include "shm/adaptive_spin.hpp"
#include "shm/futex.hpp"
#include "shm/mapped_region.hpp"
#include "shm/spinner_token.hpp"
#include "shm/spsc_ring.hpp"

namespace hostq::shm {

struct WorkerSegment::Impl {
  MappedRegion region;
  SegmentHeader* header = nullptr;
  SlotLayout* slot = nullptr;
  std::uint32_t slotIndex = 0;
  pid_t pid = 0;
  pid_t serverPid = 0;
  UniqueFd serverPidfd;  // readable once the server process has exited
  RingWriter<RequestRing> requests;
  RingReader<ReplyRing> replies;
  AdaptiveSpin spin;
  WaitCounters counters;
  std::uint32_t localSpinCap = usableCpus() - 1;

  bool serverGone() const noexcept {
    if (serverPidfd.get() >= 0) {
      pollfd p{serverPidfd.get(), POLLIN, 0};
      return ::poll(&p, 1, 0) > 0;
    }
    return ::kill(serverPid, 0) != 0 && errno == ESRCH;
  }
  bool slotClosed() const noexcept {
    return slot->state.load(std::memory_order_acquire) != static_cast<std::uint32_t>(SlotState::Active) ||
           slot->workerPid.load(std::memory_order_relaxed) != pid ||
           header->retired.load(std::memory_order_acquire) != 0;
  }
};

WorkerSegment::WorkerSegment(std::unique_ptr<Impl> impl) noexcept : m_impl(std::move(impl)) {}
WorkerSegment::WorkerSegment(WorkerSegment&&) noexcept = default;
WorkerSegment& WorkerSegment::operator=(WorkerSegment&&) noexcept = default;
WorkerSegment::~WorkerSegment() = default;

Result<WorkerSegment> WorkerSegment::attach(int fd, std::uint32_t slot,
                                            std::uint64_t expectedGeneration) noexcept {
  auto size = MappedRegion::fileSize(fd);
  if (!size) return size.error();
  if (size.value() < sizeof(SegmentHeader)) return SegmentErrc::BadSize;
  // Map the header alone first: the geometry it claims decides how much to map.
  std::size_t mapped = sizeof(SegmentHeader);
  auto region = MappedRegion::map(fd, mapped);
  if (!region) return region.error();
  const auto* h = reinterpret_cast<const SegmentHeader*>(region->data());
  if (h->magic != kSegmentMagic) return SegmentErrc::BadMagic;
  if (h->layoutVersion != kLayoutVersion || h->requestRingCapacity != kRequestRingCapacity ||
      h->replyRingCapacity != kReplyRingCapacity ||
      h->requestRecordSize != kRequestRecordSize || h->replyRecordSize != kReplyRecordSize ||
      h->slotSize != sizeof(SlotLayout))
    return SegmentErrc::BadVersion;
  if (h->slotCapacity == 0 || h->slotCapacity > kMaxSlotCount ||
      h->segmentSize != segmentBytes(h->slotCapacity) || size.value() != h->segmentSize)
    return SegmentErrc::BadSize;
  if (h->generation != expectedGeneration) return SegmentErrc::BadGeneration;
  if (slot >= h->slotCapacity) return SegmentErrc::BadSlot;
  const std::size_t full = h->segmentSize;
  region = MappedRegion::map(fd, full);
  if (!region) return region.error();

  std::unique_ptr<Impl> impl(new (std::nothrow) Impl);
  if (!impl) return SegmentError{SegmentErrc::SystemError, ENOMEM};
  impl->region = std::move(region).value();
  std::byte* base = impl->region.data();
  impl->header = reinterpret_cast<SegmentHeader*>(base);
  impl->slot = reinterpret_cast<SlotLayout*>(base + sizeof(SegmentHeader) + std::size_t{slot} * sizeof(SlotLayout));
  impl->slotIndex = slot;
  impl->pid = ::getpid();
  impl->serverPid = impl->header->serverPid;
  // Re-check on the mapping we keep: the header pages are the same, but be exact about what
  // we validated.
  if (impl->header->generation != expectedGeneration) return SegmentErrc::BadGeneration;
  if (impl->slotClosed()) return SegmentErrc::SlotNotAssigned;
  impl->serverPidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, impl->serverPid, 0)));

  SlotLayout& l = *impl->slot;
  const std::uint32_t reqTail = l.requests.tail.load(std::memory_order_acquire);
  const std::uint32_t reqHead = l.requests.head.load(std::memory_order_acquire);
  const std::uint32_t repHead = l.replies.head.load(std::memory_order_acquire);
  const std::uint32_t repTail = l.replies.tail.load(std::memory_order_acquire);
  if (reqTail - reqHead > kRequestRingCapacity || repTail - repHead > kReplyRingCapacity)
    return SegmentErrc::SlotNotAssigned;
  impl->requests.reset(&l.requests, reqTail, reqHead);
  impl->replies.reset(&l.replies, repHead, repHead);
  return WorkerSegment(std::move(impl));
}

PushResult WorkerSegment::pushRequest(std::span<const std::byte> payload, bool wake) noexcept {
  Impl& m = *m_impl;
  const PushResult r = m.requests.push(payload);
  if (r != PushResult::Ok) return r;
  SegmentHeader& h = *m.header;
  // After the publish: a server that takes the flag finds the record.
  h.pending[m.slotIndex / 64].fetch_or(std::uint64_t{1} << (m.slotIndex % 64), std::memory_order_seq_cst);
  // seq_cst load after the seq_cst publish: the Dekker pair of docs/wake-protocol.md. A quiet
  // push still wakes a sleeping server once the ring is half full: a worker running a long
  // queue of short jobs must not fill it (a full ring sends results over the socket).
  if (wake || m.requests.used() >= RequestRing::kCapacity / 2) ringIfAsleep();
  return PushResult::Ok;
}

void WorkerSegment::ringIfAsleep() noexcept {
  Impl& m = *m_impl;
  SegmentHeader& h = *m.header;
  if (h.serverSleeping.load(std::memory_order_seq_cst) == 0) return;
  // Rung already during this sleep (by us or another worker): its FUTEX_WAIT returns, and the
  // pass that follows finds our record (its pending bit is set). Without this, every quiet
  // push past the ring's half paid a FUTEX_WAKE until the server was scheduled: 13 % of a
  // no-op burn-down's jobs. The acquire of the flag's load orders this read after the
  // server's store of the value it sleeps on; a flag left at 1 from an earlier sleep pairs
  // with an older value, which can only make us ring once more.
  if (h.doorbell.load(std::memory_order_relaxed) != h.sleepDoorbell.load(std::memory_order_relaxed)) return;
  h.wakePostNs.store(monotonicNs(), std::memory_order_relaxed);
  h.doorbell.fetch_add(1, std::memory_order_seq_cst);
  ++m.counters.futexWakes;
  futexWake(&h.doorbell, 1);
}

void WorkerSegment::nudgeServer() noexcept {
  if (m_impl->replies.pending()) return;
  ringIfAsleep();
}

PopResult WorkerSegment::popReply(std::span<std::byte> out, std::size_t& len) noexcept {
  return m_impl->replies.pop(out, len);
}

WaitOutcome WorkerSegment::waitForReply(std::chrono::nanoseconds timeout) noexcept {
  Impl& m = *m_impl;
  SlotLayout& l = *m.slot;
  if (m.replies.pending()) return WaitOutcome::Ready;
  if (m.slotClosed()) return WaitOutcome::Closed;
  const std::uint64_t start = monotonicNs();
  const std::uint64_t deadline =
      timeout.count() <= 0 ? start : start + static_cast<std::uint64_t>(timeout.count());

  // A sleeping server first needs a ~30 µs wake-up here (idle vCPU); spinning meanwhile only
  // delays it if it is scheduled on our CPU.
  const bool serverAwake = m.header->serverSleeping.load(std::memory_order_relaxed) == 0;
  if (timeout.count() > 0 && serverAwake && acquireSpinnerToken(l, *m.header, m.localSpinCap)) {
    const std::uint32_t budget = m.spin.budget();
    std::uint32_t i = 1;
    for (; i <= budget; ++i) {
      cpuRelax();
      if (m.replies.pending()) break;
    }
    releaseSpinnerToken(l, *m.header);
    if (i <= budget) {
      m.counters.spinPauses += i;
      ++m.counters.spinSuccesses;
      m.spin.onSpinSuccess(i);
      return WaitOutcome::Ready;
    }
    m.counters.spinPauses += budget;
    ++m.counters.spinFailures;
    m.spin.onSpinFailure();
  } else {
    ++m.counters.spinSkipped;
  }

  const std::uint64_t cap = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(kSafetyNetWait).count());
  for (;;) {
    // The tail is the futex word: read it before announcing sleep (see server_segment.cpp).
    const std::uint32_t seen = l.replies.tail.load(std::memory_order_acquire);
    l.workerSleeping.store(1, std::memory_order_seq_cst);
    if (m.replies.pending()) {
      l.workerSleeping.store(0, std::memory_order_relaxed);
      return WaitOutcome::Ready;
    }
    if (m.slotClosed()) {
      l.workerSleeping.store(0, std::memory_order_relaxed);
      return WaitOutcome::Closed;
    }
    const std::uint64_t now = monotonicNs();
    if (now >= deadline) {
      l.workerSleeping.store(0, std::memory_order_relaxed);
      return WaitOutcome::TimedOut;
    }
    ++m.counters.futexWaits;
    const WaitResult r =
        futexWait(&l.replies.tail, seen, std::chrono::nanoseconds(std::min(deadline - now, cap)));
    l.workerSleeping.store(0, std::memory_order_relaxed);
    if (r == WaitResult::TimedOut) {
      ++m.counters.futexTimeouts;
      if (m.replies.pending()) ++m.counters.wakeMisses;
      // A server killed with -9 never wakes us: the safety net is where we notice.
      if (m.serverGone()) return WaitOutcome::Closed;
      continue;
    }
    if (r == WaitResult::Interrupted) {
      ++m.counters.interrupted;
      return WaitOutcome::Interrupted;
    }
    if (m.replies.pending()) {
      m.spin.afterSleep(start, l.replyPostNs.load(std::memory_order_relaxed), monotonicNs());
      return WaitOutcome::Ready;
    }
  }
}

bool WorkerSegment::generationChanged() const noexcept {
  return m_impl->header->retired.load(std::memory_order_acquire) != 0 || m_impl->serverGone();
}
bool WorkerSegment::closed() const noexcept { return m_impl->slotClosed() || m_impl->serverGone(); }
bool WorkerSegment::released() const noexcept { return m_impl->slotClosed(); }
void WorkerSegment::markStarted(std::uint64_t job) noexcept {
  // release: a result pushed before the mark is cleared is visible to a server that reads 0.
  m_impl->slot->startedJob.store(job, std::memory_order_release);
}
std::uint64_t WorkerSegment::generation() const noexcept { return m_impl->header->generation; }
std::uint32_t WorkerSegment::slot() const noexcept { return m_impl->slotIndex; }
const WaitCounters& WorkerSegment::counters() const noexcept { return m_impl->counters; }
std::uint32_t WorkerSegment::spinBudget() const noexcept { return m_impl->spin.budget(); }

}  // namespace hostq::shm
