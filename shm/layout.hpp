#pragma once
// Byte layout of the shared segment. Plain structs only: no pointers, no virtuals, nothing that
// owns memory, so the same bytes mean the same thing in every process whatever address it mapped
// them at. docs/shm-layout.md documents every field (writer, memory order, invariant); change
// that document and kLayoutVersion together with anything here.
//
// Trust: the server creates the segment and trusts nothing a worker can write. Every index and
// length it reads from shm is range-checked before use (see spsc_ring.hpp), and the server keeps
// its own copies of the indices it owns instead of reading them back.
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hostq::shm {

inline constexpr std::uint64_t kSegmentMagic = 0x31'4d'48'53'51'54'53'48;  // "HSTQSHM1" (LE)
/// Bump on any change of field order, width or meaning in this file.
/// 2: multi-frame request records, pending flags; 3: startedJob, multi-frame reply records;
/// 4: the request ring of 128 records, both capacities in the header; 5: the reply ring of 64
/// records, sleepDoorbell.
inline constexpr std::uint32_t kLayoutVersion = 5;

/// Two cache lines: the adjacent-line prefetcher pulls lines in 128-byte pairs, so a hot word
/// owned by one side must not share a pair with a word owned by the other (as Aeron pads).
inline constexpr std::size_t kLinePair = 128;
inline constexpr std::size_t kCacheLine = 64;

inline constexpr std::uint32_t kMaxSlotCount = 4096;  // slots a segment may have
inline constexpr std::uint32_t kPendingWords = kMaxSlotCount / 64;

/// Records per slot and direction. A worker running the jobs of a reply of several (and of the
/// one it asked for ahead), up to 2 × 256, packs their results about nine to a record (one
/// record per reply record's jobs) before the server next visits its slot (which it must, to
/// answer it): ~60 records, so 128 never fills then, and a full ring would send results over
/// the socket. The reply ring holds two replies of at most 24 records each and the 4 kept for
/// acks (docs/shm-layout.md).
inline constexpr std::uint32_t kRequestRingCapacity = 128;
inline constexpr std::uint32_t kReplyRingCapacity = 64;
static_assert((kRequestRingCapacity & (kRequestRingCapacity - 1)) == 0, "index masking needs a power of two");
static_assert((kReplyRingCapacity & (kReplyRingCapacity - 1)) == 0, "index masking needs a power of two");

inline constexpr std::size_t kRequestRecordSize = 256;
inline constexpr std::size_t kReplyRecordSize = 1024;

/// A fixed-size record: a length prefix and opaque bytes (encoded by src/protocol). The length
/// is the only field shm interprets, and only to bound the copy.
template <std::size_t Size>
struct alignas(kCacheLine) Record {
  static constexpr std::size_t kPayloadCapacity = Size - sizeof(std::uint32_t);
  std::uint32_t length;  // written by the producer before it publishes the record
  std::byte bytes[kPayloadCapacity];
};
using RequestRecord = Record<kRequestRecordSize>;
using ReplyRecord = Record<kReplyRecordSize>;
static_assert(sizeof(RequestRecord) == kRequestRecordSize);
static_assert(sizeof(ReplyRecord) == kReplyRecordSize);

inline constexpr std::size_t kRequestPayloadMax = RequestRecord::kPayloadCapacity;  // 252
inline constexpr std::size_t kReplyPayloadMax = ReplyRecord::kPayloadCapacity;      // 1020

/// One SPSC ring. Indices are free-running u32 counters (masked on access), so full and empty
/// are distinguishable without a spare record and `tail - head` is the fill level; a value
/// greater than Capacity can only come from a corrupt or hostile peer.
template <class Rec, std::uint32_t Capacity>
struct RingLayout {
  using RecordType = Rec;
  static constexpr std::uint32_t kCapacity = Capacity;
  /// Producer's publish index. Also the consumer's futex word: it changes on every publish, so
  /// a waiter that passes the value it last saw cannot miss a record (docs/wake-protocol.md).
  alignas(kLinePair) std::atomic<std::uint32_t> tail;
  /// Consumer's release index.
  alignas(kLinePair) std::atomic<std::uint32_t> head;
  alignas(kLinePair) Rec records[Capacity];
};

using RequestRing = RingLayout<RequestRecord, kRequestRingCapacity>;  // worker -> server
using ReplyRing = RingLayout<ReplyRecord, kReplyRingCapacity>;        // server -> worker

enum class SlotState : std::uint32_t { Free = 0, Active = 1 };

struct SlotLayout {
  // --- server-owned control pair: changes only in resetSlot/releaseSlot.
  alignas(kLinePair) std::atomic<std::uint32_t> state;  // SlotState
  std::atomic<std::int32_t> workerPid;                   // pid the slot was reset for
  std::atomic<std::uint32_t> epoch;                      // +1 on every reset; diagnostic
  // --- server-owned wake stamp: written only when the server must wake a sleeping worker.
  alignas(kLinePair) std::atomic<std::uint64_t> replyPostNs;
  // --- worker-owned pair: read by the server after every reply push.
  alignas(kLinePair) std::atomic<std::uint32_t> workerSleeping;
  std::atomic<std::uint32_t> workerSpinning;  // holds (or is about to hold) a spinner token
  /// The job the worker has started and not yet put a result for in the ring (0: none). Read
  /// by the server only once the worker is gone, to tell the job it was running (an attempt)
  /// from jobs it held unstarted (given back). Untrusted like everything a worker writes.
  std::atomic<std::uint64_t> startedJob;
  RequestRing requests;
  ReplyRing replies;
};

struct SegmentHeader {
  // --- immutable after create(); written before the fd leaves the server process.
  alignas(kLinePair) std::uint64_t magic;
  std::uint32_t layoutVersion;
  std::uint32_t slotCapacity;
  std::uint64_t generation;
  std::uint64_t segmentSize;
  std::int32_t serverPid;
  std::uint32_t requestRingCapacity;
  std::uint32_t requestRecordSize;
  std::uint32_t replyRecordSize;
  std::uint32_t slotSize;
  std::uint32_t maxSpinners;  // worker spinners allowed at once (cores - 1)
  std::uint32_t replyRingCapacity;  // layout version 4
  // --- set once, by the server, when it stops serving this segment.
  std::atomic<std::uint32_t> retired;
  // --- server doorbell pair: workers RMW it to wake the server; the server futex-waits on it.
  alignas(kLinePair) std::atomic<std::uint32_t> doorbell;
  std::atomic<std::uint64_t> wakePostNs;  // when a worker last had to wake the server
  // --- server-owned pair: read by every worker after every request push.
  alignas(kLinePair) std::atomic<std::uint32_t> serverSleeping;
  /// The doorbell value the server's FUTEX_WAIT compares against (layout version 5): stored
  /// relaxed before serverSleeping's seq_cst store, read after a worker's seq_cst load of 1. A
  /// doorbell already past it means someone rang since the server went to sleep, so its wait
  /// returns without another FUTEX_WAKE.
  std::atomic<std::uint32_t> sleepDoorbell;
  // --- shared spinner counter (workers RMW).
  alignas(kLinePair) std::atomic<std::uint32_t> spinners;
  // --- request flags, bit i%64 of word i/64 for slot i: a worker sets its bit (RMW seq_cst)
  // after every request it publishes; the server takes whole words (exchange) and visits only
  // the slots flagged, so a pass costs the work present, not the number of workers. Untrusted:
  // a bit for a slot that is not active is ignored, one for an active slot costs a pop that
  // finds nothing.
  alignas(kLinePair) std::atomic<std::uint64_t> pending[kPendingWords];
};

/// Slot i starts at sizeof(SegmentHeader) + i * sizeof(SlotLayout).
inline constexpr std::size_t segmentBytes(std::uint32_t slotCount) noexcept {
  return sizeof(SegmentHeader) + std::size_t{slotCount} * sizeof(SlotLayout);
}

// The layout is an ABI between processes: pin it down.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && sizeof(std::atomic<std::uint64_t>) == 8);
static_assert(offsetof(RequestRing, tail) == 0);
static_assert(offsetof(RequestRing, head) == 128);
static_assert(offsetof(RequestRing, records) == 256);
static_assert(sizeof(RequestRing) == 256 + 128 * 256);
static_assert(sizeof(ReplyRing) == 256 + 64 * 1024);
static_assert(offsetof(SlotLayout, state) == 0);
static_assert(offsetof(SlotLayout, replyPostNs) == 128);
static_assert(offsetof(SlotLayout, workerSleeping) == 256);
static_assert(offsetof(SlotLayout, startedJob) == 264);
static_assert(offsetof(SlotLayout, requests) == 384);
static_assert(offsetof(SlotLayout, replies) == 384 + sizeof(RequestRing));
static_assert(sizeof(SlotLayout) == 384 + sizeof(RequestRing) + sizeof(ReplyRing));
static_assert(sizeof(SlotLayout) % kLinePair == 0);
static_assert(offsetof(SegmentHeader, requestRingCapacity) == 0x24);
static_assert(offsetof(SegmentHeader, replyRingCapacity) == 0x38);
static_assert(offsetof(SegmentHeader, retired) == 0x3C);
static_assert(offsetof(SegmentHeader, doorbell) == 128);
static_assert(offsetof(SegmentHeader, serverSleeping) == 256);
static_assert(offsetof(SegmentHeader, sleepDoorbell) == 260);
static_assert(offsetof(SegmentHeader, spinners) == 384);
static_assert(offsetof(SegmentHeader, pending) == 512);
static_assert(sizeof(SegmentHeader) == 1024);

}  // namespace hostq::shm
