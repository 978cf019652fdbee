#include "shm/server_segment.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <new>
#include <vector>

#include "shm/adaptive_spin.hpp"
#include "shm/futex.hpp"
#include "shm/spinner_token.hpp"
#include "shm/spsc_ring.hpp"

namespace hostq::shm {

namespace {
constexpr std::uint32_t kNotListed = UINT32_MAX;

SlotLayout* slotAt(std::byte* base, std::uint32_t i) noexcept {
  return reinterpret_cast<SlotLayout*>(base + sizeof(SegmentHeader) + std::size_t{i} * sizeof(SlotLayout));
}
}  // namespace

struct ServerSegment::Impl {
  struct Slot {
    SlotLayout* layout = nullptr;
    RingReader<RequestRing> requests;
    RingWriter<ReplyRing> replies;
    std::uint32_t listIndex = kNotListed;  // position in `active`, or kNotListed
  };

  UniqueFd fd;
  MappedRegion region;
  SegmentHeader* header = nullptr;
  std::vector<Slot> slots;
  std::vector<std::uint32_t> active;
  AdaptiveSpin spin;
  WaitCounters counters;
  std::uint32_t lastDoorbell = 0;
  bool retired = false;

  /// Private mirror of `active` as bits, to mask the flags workers set.
  std::uint64_t activeBits[kPendingWords] = {};
  std::uint32_t words = 0;  ///< flag words in use: ceil(capacity / 64)
  std::uint32_t rotation = 0;

  // seq_cst: the re-check after announcing sleep is the server's half of the Dekker pair.
  bool anyPending() const noexcept {
    for (std::uint32_t w = 0; w < words; ++w)
      if ((header->pending[w].load(std::memory_order_seq_cst) & activeBits[w]) != 0) return true;
    return false;
  }

  // Spinning only pays if someone can post while we spin; a worker parked in FUTEX_WAIT for a
  // reply cannot. Untrusted flag, used only as a hint.
  bool anyWorkerAwake() const noexcept {
    for (std::uint32_t s : active)
      if (slots[s].layout->workerSleeping.load(std::memory_order_relaxed) == 0) return true;
    return false;
  }

  bool doorbellRung() const noexcept {
    return header->doorbell.load(std::memory_order_acquire) != lastDoorbell;
  }

  WaitOutcome ready() noexcept {
    // Every ring before this load is covered by the caller's drain that follows the return.
    lastDoorbell = header->doorbell.load(std::memory_order_acquire);
    return WaitOutcome::Ready;
  }

  void unlist(std::uint32_t slot) noexcept {
    Slot& s = slots[slot];
    if (s.listIndex == kNotListed) return;
    const std::uint32_t last = active.back();
    active[s.listIndex] = last;
    slots[last].listIndex = s.listIndex;
    active.pop_back();
    s.listIndex = kNotListed;
    activeBits[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
  }

  void wakeWorker(SlotLayout& l) noexcept {
    ++counters.futexWakes;
    futexWake(&l.replies.tail, INT_MAX);
  }
};

ServerSegment::ServerSegment(std::unique_ptr<Impl> impl) noexcept : m_impl(std::move(impl)) {}
ServerSegment::ServerSegment(ServerSegment&&) noexcept = default;
ServerSegment& ServerSegment::operator=(ServerSegment&& o) noexcept {
  if (this != &o) {
    if (m_impl) retire();
    m_impl = std::move(o.m_impl);
  }
  return *this;
}
ServerSegment::~ServerSegment() {
  if (m_impl) retire();
}

Result<ServerSegment> ServerSegment::create(std::uint32_t slotCount) noexcept {
  if (slotCount == 0 || slotCount > kMaxSlots) return SegmentErrc::BadSlot;
  const std::size_t bytes = segmentBytes(slotCount);
  auto fd = MappedRegion::createMemfd("hostq-shm", bytes);
  if (!fd) return fd.error();
  auto region = MappedRegion::map(fd->get(), bytes);
  if (!region) return region.error();

  std::unique_ptr<Impl> impl(new (std::nothrow) Impl);
  if (!impl) return SegmentError{SegmentErrc::SystemError, ENOMEM};
  impl->fd = std::move(fd).value();
  impl->region = std::move(region).value();
  std::byte* base = impl->region.data();

  // The memfd is zero-filled; placement-new starts the objects' lifetimes in this process.
  auto* h = new (base) SegmentHeader{};
  h->magic = kSegmentMagic;
  h->layoutVersion = kLayoutVersion;
  h->slotCapacity = slotCount;
  h->generation = randomGeneration();
  h->segmentSize = bytes;
  h->serverPid = ::getpid();
  h->requestRingCapacity = kRequestRingCapacity;
  h->replyRingCapacity = kReplyRingCapacity;
  h->requestRecordSize = kRequestRecordSize;
  h->replyRecordSize = kReplyRecordSize;
  h->slotSize = sizeof(SlotLayout);
  h->maxSpinners = usableCpus() - 1;  // the server keeps a CPU
  impl->header = h;

  impl->words = (slotCount + 63) / 64;
  impl->slots.resize(slotCount);
  impl->active.reserve(slotCount);
  for (std::uint32_t i = 0; i < slotCount; ++i) impl->slots[i].layout = new (slotAt(base, i)) SlotLayout{};
  return ServerSegment(std::move(impl));
}

int ServerSegment::fd() const noexcept { return m_impl->fd.get(); }
std::uint64_t ServerSegment::generation() const noexcept { return m_impl->header->generation; }
std::uint32_t ServerSegment::capacity() const noexcept { return m_impl->header->slotCapacity; }
const WaitCounters& ServerSegment::counters() const noexcept { return m_impl->counters; }
std::uint32_t ServerSegment::spinBudget() const noexcept { return m_impl->spin.budget(); }
std::span<const std::uint32_t> ServerSegment::activeSlots() const noexcept { return m_impl->active; }

bool ServerSegment::isActive(std::uint32_t slot) const noexcept {
  return slot < m_impl->slots.size() && m_impl->slots[slot].listIndex != kNotListed;
}

std::uint64_t ServerSegment::startedJob(std::uint32_t slot) const noexcept {
  if (slot >= m_impl->slots.size()) return 0;
  // acquire: pairs with the worker's release, so a result it pushed before clearing the mark
  // is in the ring by the time the mark reads 0.
  return m_impl->slots[slot].layout->startedJob.load(std::memory_order_acquire);
}

void ServerSegment::resetSlot(std::uint32_t slot, pid_t workerPid) noexcept {
  Impl& m = *m_impl;
  if (slot >= m.slots.size()) return;
  Impl::Slot& s = m.slots[slot];
  SlotLayout& l = *s.layout;
  l.state.store(static_cast<std::uint32_t>(SlotState::Free), std::memory_order_relaxed);
  reclaimSpinnerToken(l, *m.header);
  l.workerSleeping.store(0, std::memory_order_relaxed);
  l.startedJob.store(0, std::memory_order_relaxed);
  l.requests.tail.store(0, std::memory_order_relaxed);
  l.requests.head.store(0, std::memory_order_relaxed);
  l.replies.tail.store(0, std::memory_order_relaxed);
  l.replies.head.store(0, std::memory_order_relaxed);
  l.replyPostNs.store(0, std::memory_order_relaxed);
  l.workerPid.store(workerPid, std::memory_order_relaxed);
  l.epoch.fetch_add(1, std::memory_order_relaxed);
  // release: a worker that sees Active also sees the zeroed indices (in practice the fd and
  // slot number reach it over the socket afterwards, which orders this anyway).
  l.state.store(static_cast<std::uint32_t>(SlotState::Active), std::memory_order_release);
  s.requests.reset(&l.requests, 0, 0);
  s.replies.reset(&l.replies, 0, 0);
  if (s.listIndex == kNotListed) {
    s.listIndex = static_cast<std::uint32_t>(m.active.size());
    m.active.push_back(slot);
  }
  m.header->pending[slot / 64].fetch_and(~(std::uint64_t{1} << (slot % 64)), std::memory_order_relaxed);
  m.activeBits[slot / 64] |= std::uint64_t{1} << (slot % 64);
}

void ServerSegment::releaseSlot(std::uint32_t slot) noexcept {
  Impl& m = *m_impl;
  if (slot >= m.slots.size()) return;
  SlotLayout& l = *m.slots[slot].layout;
  m.unlist(slot);
  l.state.store(static_cast<std::uint32_t>(SlotState::Free), std::memory_order_seq_cst);
  reclaimSpinnerToken(l, *m.header);
  m.wakeWorker(l);
}

PopResult ServerSegment::popRequest(std::uint32_t slot, std::span<std::byte> out,
                                    std::size_t& len) noexcept {
  if (!isActive(slot)) return PopResult::Closed;
  return m_impl->slots[slot].requests.pop(out, len);
}

PushResult ServerSegment::pushReply(std::uint32_t slot, std::span<const std::byte> payload) noexcept {
  if (!isActive(slot)) return PushResult::Closed;
  Impl::Slot& s = m_impl->slots[slot];
  const PushResult r = s.replies.push(payload);
  if (r != PushResult::Ok) return r;
  SlotLayout& l = *s.layout;
  // seq_cst load after the seq_cst publish in push(): the Dekker pair of docs/wake-protocol.md.
  if (l.workerSleeping.load(std::memory_order_seq_cst) != 0) {
    l.replyPostNs.store(monotonicNs(), std::memory_order_relaxed);
    m_impl->wakeWorker(l);
  }
  return PushResult::Ok;
}

std::uint32_t ServerSegment::replyRecordsFree(std::uint32_t slot) noexcept {
  if (!isActive(slot)) return 0;
  return ReplyRing::kCapacity - m_impl->slots[slot].replies.used();
}

bool ServerSegment::anyRequestPending() const noexcept { return m_impl->anyPending(); }

void ServerSegment::takePendingSlots(std::vector<std::uint32_t>& out) noexcept {
  Impl& m = *m_impl;
  const std::size_t first = out.size();
  for (std::uint32_t w = 0; w < m.words; ++w) {
    if (m.header->pending[w].load(std::memory_order_relaxed) == 0) continue;
    // acquire: pairs with the worker's RMW after its publish (the pop re-reads the tail anyway).
    std::uint64_t bits = m.header->pending[w].exchange(0, std::memory_order_acquire) & m.activeBits[w];
    while (bits != 0) {
      const int b = __builtin_ctzll(bits);
      bits &= bits - 1;
      out.push_back(w * 64 + static_cast<std::uint32_t>(b));
    }
  }
  const std::size_t n = out.size() - first;
  if (n > 1) {
    const std::size_t by = m.rotation++ % n;
    std::rotate(out.begin() + static_cast<std::ptrdiff_t>(first),
                out.begin() + static_cast<std::ptrdiff_t>(first + by), out.end());
  }
}

void ServerSegment::markPending(std::uint32_t slot) noexcept {
  if (!isActive(slot)) return;
  m_impl->header->pending[slot / 64].fetch_or(std::uint64_t{1} << (slot % 64), std::memory_order_relaxed);
}

WaitOutcome ServerSegment::waitForWork(std::chrono::nanoseconds timeout) noexcept {
  Impl& m = *m_impl;
  SegmentHeader& h = *m.header;
  if (m.doorbellRung() || m.anyPending()) return m.ready();
  const std::uint64_t start = monotonicNs();
  const std::uint64_t deadline =
      timeout.count() <= 0 ? start : start + static_cast<std::uint64_t>(timeout.count());

  if (timeout.count() > 0 && m.anyWorkerAwake()) {
    const std::uint32_t budget = m.spin.budget();
    for (std::uint32_t i = 1; i <= budget; ++i) {
      cpuRelax();
      if (m.anyPending() || m.doorbellRung()) {
        m.counters.spinPauses += i;
        ++m.counters.spinSuccesses;
        m.spin.onSpinSuccess(i);
        return m.ready();
      }
    }
    m.counters.spinPauses += budget;
    ++m.counters.spinFailures;
    m.spin.onSpinFailure();
  } else {
    ++m.counters.spinSkipped;
  }

  for (;;) {
    // Read the word *before* announcing sleep and re-checking: FUTEX_WAIT compares against
    // this value, so a post after the re-check makes the wait return at once.
    const std::uint32_t db = h.doorbell.load(std::memory_order_acquire);
    if (db != m.lastDoorbell) return m.ready();
    h.sleepDoorbell.store(db, std::memory_order_relaxed);
    h.serverSleeping.store(1, std::memory_order_seq_cst);
    if (m.anyPending()) {
      h.serverSleeping.store(0, std::memory_order_relaxed);
      return m.ready();
    }
    const std::uint64_t now = monotonicNs();
    if (now >= deadline) {
      h.serverSleeping.store(0, std::memory_order_relaxed);
      return WaitOutcome::TimedOut;
    }
    const std::uint64_t cap = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(kSafetyNetWait).count());
    ++m.counters.futexWaits;
    const WaitResult r =
        futexWait(&h.doorbell, db, std::chrono::nanoseconds(std::min(deadline - now, cap)));
    // relaxed: a worker that still sees 1 only pays one needless FUTEX_WAKE.
    h.serverSleeping.store(0, std::memory_order_relaxed);
    if (r == WaitResult::TimedOut) {
      ++m.counters.futexTimeouts;
      if (m.anyPending()) ++m.counters.wakeMisses;
      continue;
    }
    if (r == WaitResult::Interrupted) {
      ++m.counters.interrupted;
      return WaitOutcome::Interrupted;
    }
    m.spin.afterSleep(start, h.wakePostNs.load(std::memory_order_relaxed), monotonicNs());
    // Woken or ValueChanged: loop; the doorbell check at the top returns Ready.
  }
}

void ServerDoorbell::ring() const noexcept {
  m_header->doorbell.fetch_add(1, std::memory_order_seq_cst);
  futexWake(&m_header->doorbell, 1);
}

void ServerSegment::ringServerDoorbell() const noexcept { doorbell().ring(); }
ServerDoorbell ServerSegment::doorbell() const noexcept { return ServerDoorbell(m_impl->header); }

void ServerSegment::retire() noexcept {
  Impl& m = *m_impl;
  if (m.retired) return;
  m.retired = true;
  m.header->retired.store(1, std::memory_order_seq_cst);
  for (auto& s : m.slots)
    if (s.listIndex != kNotListed) m.wakeWorker(*s.layout);
}

}  // namespace hostq::shm
