// The one histogram: bucket edges, percentiles within 12.5%, merge, and the bucket-only counts a
// shared-memory histogram is read back with.
#include <gtest/gtest.h>

#include <cstdint>

#include "common/latency_histogram.hpp"

namespace hostq {
namespace {

TEST(LatencyHistogram, EveryValueFallsInABucketThatHoldsIt) {
  for (std::uint64_t v : {0ull, 1ull, 7ull, 8ull, 9ull, 15ull, 16ull, 1000ull, 123456789ull, 1ull << 40}) {
    const int i = LatencyHistogram::indexOf(v);
    EXPECT_LE(v, LatencyHistogram::bucketUpper(i)) << v;
    if (i > 0) {
      EXPECT_GT(v, LatencyHistogram::bucketUpper(i - 1)) << v;
    }
  }
  // Buckets are ordered and no bucket is wider than 1/8 of its lower edge past the linear start.
  for (int i = LatencyHistogram::kSub + 1; i < 300; ++i) {
    const auto lo = LatencyHistogram::bucketUpper(i - 1) + 1, hi = LatencyHistogram::bucketUpper(i);
    ASSERT_GE(hi, lo);
    EXPECT_LE(static_cast<double>(hi - lo + 1), static_cast<double>(lo) / 8.0 + 1.0) << i;
  }
  // The largest value has a bucket, whose edge is that value.
  EXPECT_LT(LatencyHistogram::indexOf(UINT64_MAX), LatencyHistogram::kBuckets);
  EXPECT_EQ(LatencyHistogram::bucketUpper(LatencyHistogram::indexOf(UINT64_MAX)), UINT64_MAX);
}

TEST(LatencyHistogram, PercentilesAreWithinAnEighth) {
  LatencyHistogram h;
  EXPECT_EQ(h.percentile(0.5), 0u);
  for (std::uint64_t v = 1; v <= 10'000; ++v) h.record(v * 1000);
  EXPECT_EQ(h.count(), 10'000u);
  EXPECT_EQ(h.sum(), 1000ull * 10'000ull * 10'001ull / 2);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double truth = q * 10'000 * 1000;
    const auto got = static_cast<double>(h.percentile(q));
    EXPECT_GE(got, truth) << q;
    EXPECT_LE(got, truth * 1.125) << q;
  }
  EXPECT_EQ(h.percentile(1.0), LatencyHistogram::bucketUpper(LatencyHistogram::indexOf(10'000'000)));
}

TEST(LatencyHistogram, MergeAndBucketCountsAddUp) {
  LatencyHistogram a, b;
  a.record(100);
  b.record(100);
  b.record(5000);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.sum(), 5200u);
  EXPECT_EQ(a.buckets()[static_cast<std::size_t>(LatencyHistogram::indexOf(100))], 2u);

  LatencyHistogram fromBuckets;
  fromBuckets.addToBucket(LatencyHistogram::indexOf(5000), 4);
  fromBuckets.addToBucket(-1, 9);  // out of range: ignored
  fromBuckets.addToBucket(LatencyHistogram::kBuckets, 9);
  EXPECT_EQ(fromBuckets.count(), 4u);
  EXPECT_EQ(fromBuckets.sum(), 0u);
  EXPECT_EQ(fromBuckets.percentile(0.5), LatencyHistogram::bucketUpper(LatencyHistogram::indexOf(5000)));
  a.reset();
  EXPECT_EQ(a.count(), 0u);
}

}  // namespace
}  // namespace hostq
