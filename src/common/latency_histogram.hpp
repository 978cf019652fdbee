#pragma once
// The one histogram: the server's latency and batch-size statistics, the /metrics histograms and
// the benchmark's job-gap figures all bucket values the same way.
#include <array>
#include <cstdint>

namespace hostq {

/// Log-linear histogram of durations in nanoseconds (or any non-negative count): 8 sub-buckets
/// per power of two, so any percentile is within 12.5% of the truth. Fixed size, no allocation;
/// not synchronised (a histogram written by several processes keeps its own atomic buckets at
/// these indices and is read back with addToBucket).
class LatencyHistogram {
 public:
  static constexpr int kSub = 8;
  static constexpr int kBuckets = 64 * kSub;

  void record(std::uint64_t ns) noexcept;
  /// `n` values known only by their bucket (no sum: sum() leaves them out).
  void addToBucket(int index, std::uint64_t n) noexcept;
  std::uint64_t count() const noexcept { return m_count; }
  /// Sum of every recorded value (Prometheus histograms carry it).
  std::uint64_t sum() const noexcept { return m_sum; }
  /// q in [0,1]; returns nanoseconds (upper edge of the bucket), 0 when empty.
  std::uint64_t percentile(double q) const noexcept;
  void merge(const LatencyHistogram& other) noexcept;
  void reset() noexcept { *this = LatencyHistogram{}; }

  /// The bucket a value falls in.
  static int indexOf(std::uint64_t ns) noexcept;
  /// Bucket index → its largest value, in ns (for charts and percentiles).
  static std::uint64_t bucketUpper(int index) noexcept;
  const std::array<std::uint64_t, kBuckets>& buckets() const noexcept { return m_buckets; }

 private:
  std::array<std::uint64_t, kBuckets> m_buckets{};
  std::uint64_t m_count = 0;
  std::uint64_t m_sum = 0;
};

}  // namespace hostq
