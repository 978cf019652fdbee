#pragma once
// The two ends of one RingLayout. Each end keeps its own index in private memory as the
// authoritative copy and only *writes* it to shm for the peer: it never reads its own index
// back, so a peer scribbling over it cannot move our position. The peer's index is read from
// shm, cached (rigtorp's readIdxCache_), and range-checked before use: with free-running
// counters, 0 <= tail - head <= Capacity holds in every legal state, so any other difference is
// proof of corruption and reported as Corrupt instead of being used.
//
// Not thread-safe: exactly one RingWriter and one RingReader per ring, each used by one thread.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "shm/layout.hpp"
#include "shm/result.hpp"

namespace hostq::shm {

namespace detail {
// The length lives in memory the peer can rewrite at any time. Fetch it exactly once so the
// bound we check is the bound we use (no double fetch after the compiler re-reads the field).
inline std::uint32_t loadOnce(const std::uint32_t& v) noexcept {
  return __atomic_load_n(&v, __ATOMIC_RELAXED);
}
inline void storeOnce(std::uint32_t& v, std::uint32_t x) noexcept {
  __atomic_store_n(&v, x, __ATOMIC_RELAXED);
}
}  // namespace detail

template <class Ring>
class RingWriter {
  using Rec = typename Ring::RecordType;
  static constexpr std::uint32_t kCap = Ring::kCapacity;

 public:
  RingWriter() noexcept = default;
  /// Takes over `ring` with the producer index at `tail` (the ring must be quiescent).
  void reset(Ring* ring, std::uint32_t tail, std::uint32_t head) noexcept {
    m_ring = ring;
    m_tail = tail;
    m_headCache = head;
  }

  /// Copies `payload` into the next record and publishes it (seq_cst: the caller's following
  /// load of the peer's `sleeping` flag must not be ordered before this store; see
  /// docs/wake-protocol.md).
  [[nodiscard]] PushResult push(std::span<const std::byte> payload) noexcept {
    if (payload.size() > Rec::kPayloadCapacity) return PushResult::TooLarge;
    if (m_tail - m_headCache >= kCap) {
      // acquire: the consumer's reads of the record it released happen before we overwrite it.
      const std::uint32_t head = m_ring->head.load(std::memory_order_acquire);
      const std::uint32_t used = m_tail - head;
      if (used > kCap) return PushResult::Corrupt;
      m_headCache = head;
      if (used == kCap) return PushResult::Full;
    }
    Rec& rec = m_ring->records[m_tail & (kCap - 1)];
    detail::storeOnce(rec.length, static_cast<std::uint32_t>(payload.size()));
    if (!payload.empty()) std::memcpy(rec.bytes, payload.data(), payload.size());
    ++m_tail;
    m_ring->tail.store(m_tail, std::memory_order_seq_cst);
    return PushResult::Ok;
  }

  std::uint32_t tail() const noexcept { return m_tail; }

  /// Records published and not yet consumed, from a fresh read of the consumer's index (0…kCap;
  /// a corrupt head counts as full, so that a caller sizing its writes by it writes nothing).
  std::uint32_t used() noexcept {
    const std::uint32_t head = m_ring->head.load(std::memory_order_acquire);
    const std::uint32_t n = m_tail - head;
    if (n > kCap) return kCap;
    m_headCache = head;
    return n;
  }

 private:
  Ring* m_ring = nullptr;
  std::uint32_t m_tail = 0;
  std::uint32_t m_headCache = 0;
};

template <class Ring>
class RingReader {
  using Rec = typename Ring::RecordType;
  static constexpr std::uint32_t kCap = Ring::kCapacity;

 public:
  RingReader() noexcept = default;
  void reset(Ring* ring, std::uint32_t head, std::uint32_t tail) noexcept {
    m_ring = ring;
    m_head = head;
    m_tailCache = tail;
  }

  /// Copies the next record into `out` and releases it. The copy is the point: the caller
  /// decodes private bytes the producer can no longer change underneath it.
  [[nodiscard]] PopResult pop(std::span<std::byte> out, std::size_t& len) noexcept {
    if (m_head == m_tailCache) {
      // acquire: pairs with the producer's publish, so the record's bytes are visible.
      const std::uint32_t tail = m_ring->tail.load(std::memory_order_acquire);
      const std::uint32_t avail = tail - m_head;
      if (avail > kCap) return PopResult::Corrupt;
      m_tailCache = tail;
      if (avail == 0) return PopResult::Empty;
    }
    const Rec& rec = m_ring->records[m_head & (kCap - 1)];
    const std::uint32_t n = detail::loadOnce(rec.length);
    if (n > Rec::kPayloadCapacity) return PopResult::Corrupt;
    if (n > out.size()) return PopResult::BufferTooSmall;
    if (n != 0) std::memcpy(out.data(), rec.bytes, n);
    len = n;
    ++m_head;
    // release: our reads of the record happen before the producer may reuse it.
    m_ring->head.store(m_head, std::memory_order_release);
    return PopResult::Ok;
  }

  /// True if pop() would not return Empty (a corrupt tail counts: pop() then reports it).
  /// seq_cst load: this is the waiter's re-check after announcing `sleeping`.
  bool pending() const noexcept {
    return m_head != m_tailCache || m_ring->tail.load(std::memory_order_seq_cst) != m_head;
  }

  std::uint32_t head() const noexcept { return m_head; }

 private:
  Ring* m_ring = nullptr;
  std::uint32_t m_head = 0;
  std::uint32_t m_tailCache = 0;
};

}  // namespace hostq::shm
