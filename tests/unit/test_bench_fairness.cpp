// `hostq bench`'s fairness figures (src/cli/fairness.hpp): per-worker job counts from the server
// stats JSON, and the worst gap ratio (N/W)/min n_i with missing and idle workers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cli/fairness.hpp"

using hostq::cli::burndown::computeFairness;
using hostq::cli::burndown::workerJobCounts;
using Counts = std::vector<std::uint64_t>;

TEST(BenchFairness, EvenFarmHasRatioOne) {
  const auto f = computeFairness(10.0, 4, Counts{250, 250, 250, 250});
  EXPECT_EQ(f.workers, 4);
  EXPECT_EQ(f.workers_served, 4);
  EXPECT_EQ(f.jobs, 1000u);
  EXPECT_EQ(f.min_jobs, 250u);
  EXPECT_EQ(f.max_jobs, 250u);
  ASSERT_TRUE(f.mean_interval_s && f.worst_interval_s && f.worst_gap_ratio);
  EXPECT_DOUBLE_EQ(*f.mean_interval_s, 0.04);  // T·W/N = 10·4/1000
  EXPECT_DOUBLE_EQ(*f.worst_interval_s, 0.04);
  EXPECT_DOUBLE_EQ(*f.worst_gap_ratio, 1.0);
}

TEST(BenchFairness, RatioIsTheLeastServedWorkersIntervalOverTheMean) {
  // N = 1000, W = 4: mean 250 jobs a worker; the least served did 100 → 2.5× the mean interval.
  const auto f = computeFairness(8.0, 4, Counts{400, 100, 300, 200});
  EXPECT_EQ(f.min_jobs, 100u);
  EXPECT_EQ(f.max_jobs, 400u);
  EXPECT_EQ(f.workers_served, 4);
  ASSERT_TRUE(f.worst_gap_ratio);
  EXPECT_DOUBLE_EQ(*f.worst_gap_ratio, 2.5);
  EXPECT_DOUBLE_EQ(*f.worst_interval_s, 0.08);  // 8 s / 100 jobs
  EXPECT_DOUBLE_EQ(*f.mean_interval_s, 0.032);  // 8 s · 4 / 1000
  EXPECT_DOUBLE_EQ(*f.worst_interval_s / *f.mean_interval_s, *f.worst_gap_ratio);
  // The ratio does not depend on T.
  EXPECT_DOUBLE_EQ(*computeFairness(123.0, 4, Counts{400, 100, 300, 200}).worst_gap_ratio, 2.5);
}

TEST(BenchFairness, UnlistedWorkersCountAsZeroJobs) {
  // 3 of 4 workers registered: the fourth did nothing, the ratio is infinite.
  const auto f = computeFairness(5.0, 4, Counts{10, 20, 30});
  EXPECT_EQ(f.workers, 4);
  EXPECT_EQ(f.workers_served, 3);
  EXPECT_EQ(f.min_jobs, 0u);
  EXPECT_EQ(f.max_jobs, 30u);
  EXPECT_EQ(f.jobs, 60u);
  ASSERT_TRUE(f.worst_gap_ratio);
  EXPECT_TRUE(std::isinf(*f.worst_gap_ratio));
  EXPECT_TRUE(std::isinf(*f.worst_interval_s));
  EXPECT_DOUBLE_EQ(*f.mean_interval_s, 5.0 * 4 / 60);
}

TEST(BenchFairness, ListedIdleWorkerIsNotServed) {
  const auto f = computeFairness(5.0, 3, Counts{0, 7, 5});
  EXPECT_EQ(f.workers_served, 2);
  EXPECT_EQ(f.min_jobs, 0u);
  EXPECT_TRUE(std::isinf(*f.worst_gap_ratio));
}

TEST(BenchFairness, MoreListedThanConfiguredWidensTheFarm) {
  // A replaced worker process shows up as an extra entry: W becomes 3.
  const auto f = computeFairness(1.0, 2, Counts{30, 30, 15});
  EXPECT_EQ(f.workers, 3);
  EXPECT_DOUBLE_EQ(*f.worst_gap_ratio, (75.0 / 3) / 15);
}

TEST(BenchFairness, NoJobsHasNoRatio) {
  const auto f = computeFairness(1.0, 2, Counts{0, 0});
  EXPECT_EQ(f.workers_served, 0);
  EXPECT_FALSE(f.worst_gap_ratio);
  EXPECT_FALSE(f.mean_interval_s);
  EXPECT_FALSE(computeFairness(1.0, 2, Counts{}).worst_gap_ratio);
}

TEST(BenchFairness, ReadsWorkerJobsFromServerStats) {
  // The shape Server::statsJson writes, including a "workers_*" key that must not be taken for
  // the array, a nested object, and a name with an escaped quote and a brace.
  const std::string stats =
      R"({"server_pid":42,"host":"h","generation":1,"workers":[)"
      R"({"name":"vm:101","pid":101,"transport":"shm","state":"waiting","jobs":400},)"
      R"({"name":"odd \"}\" name","pid":102,"transport":"socket","state":"working","jobs":100},)"
      R"({"name":"vm:103","pid":103,"transport":"shm","state":"idle","jobs":0}],)"
      R"("workers_shm":2,"workers_socket":1,"handoff":{"count":500,"p50_us":1.5}})";
  const auto counts = workerJobCounts(stats);
  ASSERT_TRUE(counts);
  EXPECT_EQ(*counts, (Counts{400, 100, 0}));
}

TEST(BenchFairness, SumsEntriesOfTheSamePid) {
  const auto counts = workerJobCounts(
      R"({"workers":[{"name":"a","pid":7,"jobs":3},{"name":"b","pid":8,"jobs":4},{"name":"a","pid":7,"jobs":5}]})");
  ASSERT_TRUE(counts);
  EXPECT_EQ(*counts, (Counts{8, 4}));
}

TEST(BenchFairness, EmptyWorkersArray) {
  const auto counts = workerJobCounts(R"({"workers":[],"workers_shm":0})");
  ASSERT_TRUE(counts);
  EXPECT_TRUE(counts->empty());
}

TEST(BenchFairness, RejectsMissingOrMalformedArrays) {
  EXPECT_FALSE(workerJobCounts(R"({"workers_shm":2,"jobs_handed_out":5})"));
  // "workers" inside a nested object is not the top-level array.
  EXPECT_FALSE(workerJobCounts(R"({"x":{"workers":[{"pid":1,"jobs":2}]}})"));
  EXPECT_FALSE(workerJobCounts(R"({"workers":[{"pid":1,"jobs":2})"));          // cut off
  EXPECT_FALSE(workerJobCounts(R"({"workers":[{"pid":1,"state":"idle"}]})"));  // no jobs
  EXPECT_FALSE(workerJobCounts(R"({"workers":[{"pid":1,"jobs":-3}]})"));
  EXPECT_FALSE(workerJobCounts(R"({"workers":[{"pid":1,"jobs":2.5}]})"));
  EXPECT_FALSE(workerJobCounts(R"({"workers":{"pid":1}})"));
}
