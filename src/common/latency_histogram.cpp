#include "common/latency_histogram.hpp"

#include <bit>

namespace hostq {

int LatencyHistogram::indexOf(std::uint64_t ns) noexcept {
  if (ns < kSub) return static_cast<int>(ns);
  const int msb = 63 - std::countl_zero(ns);  // ≥ 3
  const int shift = msb - 3;                   // keep 3 bits below the msb
  const int sub = static_cast<int>((ns >> shift) & (kSub - 1));
  const int idx = (shift + 1) * kSub + sub;
  return idx < kBuckets ? idx : kBuckets - 1;
}

std::uint64_t LatencyHistogram::bucketUpper(int index) noexcept {
  if (index < kSub) return static_cast<std::uint64_t>(index);
  const int shift = index / kSub - 1;
  const std::uint64_t sub = static_cast<std::uint64_t>(index % kSub);
  return ((kSub + sub + 1) << shift) - 1;
}

void LatencyHistogram::record(std::uint64_t ns) noexcept {
  ++m_buckets[static_cast<std::size_t>(indexOf(ns))];
  ++m_count;
  m_sum += ns;
}

void LatencyHistogram::addToBucket(int index, std::uint64_t n) noexcept {
  if (index < 0 || index >= kBuckets) return;
  m_buckets[static_cast<std::size_t>(index)] += n;
  m_count += n;
}

std::uint64_t LatencyHistogram::percentile(double q) const noexcept {
  if (m_count == 0) return 0;
  auto rank = static_cast<std::uint64_t>(q * static_cast<double>(m_count));
  if (rank >= m_count) rank = m_count - 1;
  std::uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += m_buckets[static_cast<std::size_t>(i)];
    if (seen > rank) return bucketUpper(i);
  }
  return bucketUpper(kBuckets - 1);
}

void LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
  for (int i = 0; i < kBuckets; ++i)
    m_buckets[static_cast<std::size_t>(i)] += other.m_buckets[static_cast<std::size_t>(i)];
  m_count += other.m_count;
  m_sum += other.m_sum;
}

}  // namespace hostq
