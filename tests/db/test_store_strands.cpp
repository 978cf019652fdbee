// Strands, n_strands and singleton next_in_strand transitions (§6.2–6.4, §7.7 40–47 and 65–75,
// §7.9 14–21), through the triggers.
#include <thread>

#include "support/db_fixture.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

using namespace std::chrono_literals;

class StoreStrands : public DbTest {
 protected:
  /// Strand names are advisory-lock keys, and those are database-wide: a singleton's move to
  /// another strand only try-locks it, so a parallel case's "strandB" in another schema made this
  /// one flaky. Each case's strands are its own.
  std::string own(const std::string& strand) const { return schema() + ":" + strand; }
  JobId stranded(const std::string& strand, std::optional<std::string> singleton = std::nullopt) {
    auto j = job();
    j.strand = own(strand);
    j.singleton = std::move(singleton);
    return put(j);
  }
  JobId nstranded(const std::string& name, int maxConcurrent) {
    auto j = job();
    j.n_strand = name;
    j.max_concurrent = maxConcurrent;
    return put(j);
  }
  JobId singleton(const std::string& name, std::optional<std::string> strand = std::nullopt) {
    auto j = job();
    j.singleton = name;
    if (strand) j.strand = own(*strand);
    return put(j);
  }
};

TEST_F(StoreStrands, OnlyTheHeadOfAStrandIsLockable) {
  const auto a = stranded("myjobs"), b = stranded("myjobs");
  stranded("myjobs");
  const auto first = pop("w1");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, a);
  EXPECT_FALSE(pop("w2"));
  store->complete(std::vector<OwnedJob>{{a, "w1"}});
  const auto second = pop("w2");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->id, b);
  EXPECT_FALSE(pop("w3"));
}

TEST_F(StoreStrands, StrandOrderWinsOverRunAt) {
  const auto a = stranded("s"), b = stranded("s"), c = stranded("s");
  sql("UPDATE delayed_jobs SET run_at = run_at - interval '1 hour' WHERE id = " + std::to_string(c));
  EXPECT_EQ(pop()->id, a);
  destroy(a);
  EXPECT_EQ(pop()->id, b);
}

TEST_F(StoreStrands, StrandOrderHoldsAcrossTheFullPriorityRange) {
  auto j = job();
  j.strand = "s";
  j.priority = 20;
  const auto a = put(j);
  j.priority = 0;
  put(j);
  EXPECT_EQ(pop("w", "queue", kMinPriority, kMaxPriority)->id, a);
}

TEST_F(StoreStrands, PermanentlyFailedHeadReleasesTheNextJob) {
  const auto a = stranded("s"), b = stranded("s");
  ASSERT_EQ(pop("w")->id, a);
  const auto res = store->fail(std::vector<Failure>{{a, "w", "boom", std::nullopt, true, false}});
  ASSERT_EQ(res[0].outcome, FailOutcome::MovedToFailedJobs);
  EXPECT_TRUE(nextInStrand(b));
  EXPECT_EQ(pop("w")->id, b);
}

TEST_F(StoreStrands, RescheduledHeadKeepsTheStrandBlocked) {
  auto j = job();
  j.strand = "s";
  j.max_attempts = 5;
  const auto a = put(j), b = put(j);
  ASSERT_EQ(pop("w")->id, a);
  ASSERT_EQ(store->fail(std::vector<Failure>{{a, "w", "retry", std::nullopt, true, false}})[0].outcome,
            FailOutcome::Rescheduled);
  EXPECT_TRUE(nextInStrand(a));
  EXPECT_FALSE(nextInStrand(b));
}

TEST_F(StoreStrands, StrandedAndUnstrandedJobsDoNotInterfere) {
  stranded("s");
  put(job());
  EXPECT_TRUE(pop("w1"));
  EXPECT_TRUE(pop("w2"));
  EXPECT_FALSE(pop("w3"));
}

TEST_F(StoreStrands, DifferentStrandsDoNotInterfere) {
  stranded("a");
  stranded("b");
  stranded("a");
  EXPECT_TRUE(pop("w1"));
  EXPECT_TRUE(pop("w2"));
  EXPECT_FALSE(pop("w3"));
}

TEST_F(StoreStrands, NStrandWithMaxConcurrentOneRunsOneAtATime) {
  const auto a = nstranded("njobs", 1), b = nstranded("njobs", 1);
  EXPECT_TRUE(nextInStrand(a));
  EXPECT_FALSE(nextInStrand(b));
  destroy(a);
  EXPECT_TRUE(nextInStrand(b));
}

TEST_F(StoreStrands, NStrandWithMaxConcurrentTwoRunsTwoAndPromotesTheThird) {
  const auto a = nstranded("njobs", 2), b = nstranded("njobs", 2), c = nstranded("njobs", 2);
  EXPECT_TRUE(nextInStrand(a));
  EXPECT_TRUE(nextInStrand(b));
  EXPECT_FALSE(nextInStrand(c));
  destroy(a);
  EXPECT_TRUE(nextInStrand(c));
}

TEST_F(StoreStrands, TwoPartNStrandIsItsOwnStrand) {
  const auto a = nstranded("njobs/123", 1), b = nstranded("njobs/456", 1);
  EXPECT_TRUE(nextInStrand(a));
  EXPECT_TRUE(nextInStrand(b));
  EXPECT_EQ(store->find(a)->strand, "njobs/123");
}

// --- singleton transitions (§7.7 65–75) ---------------------------------------------------------

TEST_F(StoreStrands, PlainSingletonSecondWaitsForTheFirst) {
  const auto a = singleton("s1");
  ASSERT_EQ(pop("w")->id, a);
  const auto b = singleton("s1");
  EXPECT_TRUE(nextInStrand(a));
  EXPECT_FALSE(nextInStrand(b));
  store->complete(std::vector<OwnedJob>{{a, "w"}});
  EXPECT_TRUE(nextInStrand(b));
}

TEST_F(StoreStrands, SingletonMovingFromStrandedToUnstrandedStartsAfterDelete) {
  const auto a = singleton("s1", "strandA");
  ASSERT_EQ(pop("w")->id, a);
  const auto b = singleton("s1");
  EXPECT_FALSE(nextInStrand(b));
  store->complete(std::vector<OwnedJob>{{a, "w"}});
  EXPECT_TRUE(nextInStrand(b));
}

TEST_F(StoreStrands, SingletonMovingFromUnstrandedToAFreeStrandStartsAfterDelete) {
  const auto a = singleton("s1");
  ASSERT_EQ(pop("w")->id, a);
  const auto b = singleton("s1", "strandB");
  EXPECT_FALSE(nextInStrand(b));
  store->complete(std::vector<OwnedJob>{{a, "w"}});
  EXPECT_TRUE(nextInStrand(b));
}

TEST_F(StoreStrands, SingletonMovingToABusyStrandWaitsForThatStrand) {
  const auto a = singleton("s1");
  ASSERT_EQ(pop("w")->id, a);
  const auto busy = stranded("strandB");
  ASSERT_EQ(pop("w2")->id, busy);
  const auto b = singleton("s1", "strandB");
  store->complete(std::vector<OwnedJob>{{a, "w"}});
  EXPECT_FALSE(nextInStrand(b));  // n_strand = 1 of strandB is respected
  store->complete(std::vector<OwnedJob>{{busy, "w2"}});
  EXPECT_TRUE(nextInStrand(b));
}

TEST_F(StoreStrands, SingletonMovingFromStrandAToFreeStrandBStartsAfterDelete) {
  const auto a = singleton("s1", "strandA");
  ASSERT_EQ(pop("w")->id, a);
  const auto b = singleton("s1", "strandB");
  EXPECT_FALSE(nextInStrand(b));
  store->complete(std::vector<OwnedJob>{{a, "w"}});
  EXPECT_TRUE(nextInStrand(b));
}

TEST_F(StoreStrands, SingletonMovingFromStrandAToBusyStrandBIsNotPromoted) {
  const auto a = singleton("s1", "strandA");
  ASSERT_EQ(pop("w")->id, a);
  const auto busy = stranded("strandB");
  ASSERT_EQ(pop("w2")->id, busy);
  const auto b = singleton("s1", "strandB");
  store->complete(std::vector<OwnedJob>{{a, "w"}});
  EXPECT_FALSE(nextInStrand(b));
}

TEST_F(StoreStrands, QueuedSingletonInAStrandBlocksLaterStrandJobsInOrder) {
  const auto j1 = singleton("s1", "strand");
  ASSERT_EQ(pop("w")->id, j1);
  const auto j2 = singleton("s1", "strand");
  const auto j3 = stranded("strand");
  const auto j4 = stranded("strand");
  EXPECT_FALSE(nextInStrand(j2));
  EXPECT_FALSE(nextInStrand(j3));
  EXPECT_FALSE(nextInStrand(j4));
  store->complete(std::vector<OwnedJob>{{j1, "w"}});
  for (auto expected : {j2, j3, j4}) {
    const auto got = pop("w");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, expected);
    EXPECT_FALSE(pop("w2"));
    store->complete(std::vector<OwnedJob>{{expected, "w"}});
  }
}

TEST_F(StoreStrands, QueuedSingletonIsSkippedInANStrandOfTwoUntilItsTwinFinishes) {
  auto mk = [&](std::optional<std::string> s) {
    auto j = job();
    j.n_strand = "ns";
    j.max_concurrent = 2;
    j.singleton = std::move(s);
    return put(j);
  };
  const auto j1 = mk("s1");
  ASSERT_EQ(pop("w1")->id, j1);
  const auto j2 = mk("s1");
  const auto j3 = mk(std::nullopt);
  const auto j4 = mk(std::nullopt);
  EXPECT_FALSE(nextInStrand(j2));
  EXPECT_TRUE(nextInStrand(j3));
  EXPECT_FALSE(nextInStrand(j4));
  ASSERT_EQ(pop("w3")->id, j3);
  store->complete(std::vector<OwnedJob>{{j3, "w3"}});
  EXPECT_TRUE(nextInStrand(j4));  // j4, not j2: j2's twin still runs
  EXPECT_FALSE(nextInStrand(j2));
  ASSERT_EQ(pop("w4")->id, j4);
  store->complete(std::vector<OwnedJob>{{j4, "w4"}});
  EXPECT_FALSE(nextInStrand(j2));
  store->complete(std::vector<OwnedJob>{{j1, "w1"}});
  EXPECT_TRUE(nextInStrand(j2));
}

TEST_F(StoreStrands, QueuedSingletonInAWideNStrandWaitsOnlyForItsTwin) {
  auto mk = [&](std::optional<std::string> s) {
    auto j = job();
    j.n_strand = "ns";
    j.max_concurrent = 10;
    j.singleton = std::move(s);
    return put(j);
  };
  const auto j1 = mk("s1");
  ASSERT_EQ(pop("w1")->id, j1);
  const auto j2 = mk("s1");
  const auto j3 = mk(std::nullopt);
  const auto j4 = mk(std::nullopt);
  EXPECT_FALSE(nextInStrand(j2));
  EXPECT_TRUE(nextInStrand(j3));
  EXPECT_TRUE(nextInStrand(j4));
  store->complete(std::vector<OwnedJob>{{j1, "w1"}});
  EXPECT_TRUE(nextInStrand(j2));
}

TEST_F(StoreStrands, UnlockingARunningSingletonDeletesTheQueuedDuplicate) {
  auto j = job();
  j.singleton = "s1";
  j.max_attempts = 5;
  const auto a = put(j);
  ASSERT_EQ(pop("w")->id, a);
  const auto b = put(j);
  const auto res = store->fail(std::vector<Failure>{{a, "w", "retry", std::nullopt, true, false}});
  EXPECT_EQ(res[0].outcome, FailOutcome::Rescheduled);
  EXPECT_TRUE(exists(a));
  EXPECT_FALSE(exists(b));
}

TEST_F(StoreStrands, PopRepairsTwoSingletonRowsBothMarkedNextInStrand) {
  const auto j1 = singleton("s1");
  ASSERT_EQ(pop("w1")->id, j1);
  const auto j2 = singleton("s1");
  sql("UPDATE delayed_jobs SET next_in_strand = true WHERE id = " + std::to_string(j2));  // out of band
  EXPECT_FALSE(pop("w2"));
  EXPECT_FALSE(nextInStrand(j2));
  store->complete(std::vector<OwnedJob>{{j1, "w1"}});
  EXPECT_EQ(pop("w2")->id, j2);
}

TEST_F(StoreStrands, PopReturnsTheTwinWhenTheRunningOneFinishesDuringTheRepair) {
  const auto j1 = singleton("s1");
  ASSERT_EQ(pop("w1")->id, j1);
  const auto j2 = singleton("s1");
  sql("UPDATE delayed_jobs SET next_in_strand = true WHERE id = " + std::to_string(j2));
  // Hold the singleton lock, so the repair waits; finish j1 meanwhile, then release.
  auto other = connectStore();
  other->exec("BEGIN; SELECT pg_advisory_xact_lock(half_md5_as_bigint('singleton:s1'))");
  std::optional<Job> got;
  std::thread t([&] {
    auto s = connectStore();
    ReserveRequest r;
    r.worker_names = {"w2"};
    auto res = s->reserve(r);
    if (!res.assigned.empty()) got = res.assigned[0].second;
  });
  EXPECT_TRUE(waitUntil([&] {
    return queryInt("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = 'hostq-test')") > 0;
  }));
  other->exec("DELETE FROM delayed_jobs WHERE id = " + std::to_string(j1) + "; COMMIT");
  t.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, j2);
}

}  // namespace
}  // namespace hostq::test
