// Reservation (§3.1) and the batched compare-and-set writes: transfer, complete, unlock.
#include <set>
#include <thread>

#include "support/db_fixture.hpp"

namespace hostq::test {
namespace {

using namespace std::chrono_literals;

class StoreReserve : public DbTest {};

TEST_F(StoreReserve, NothingToReserveGivesEmptyResult) {
  ReserveRequest r;
  r.worker_names = {"worker1", "worker2"};
  const auto res = store->reserve(r);
  EXPECT_TRUE(res.assigned.empty());
  EXPECT_TRUE(res.prefetched.empty());
}

TEST_F(StoreReserve, OpenJobIsFoundAndLockedWithTheDatabaseClock) {
  const auto id = put(job());
  const auto j = pop("worker1");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->id, id);
  EXPECT_EQ(j->locked_by, "worker1");
  ASSERT_TRUE(j->locked_at);
  EXPECT_EQ(query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(id)), "worker1");
}

TEST_F(StoreReserve, FutureJobsAreNotFoundUntilTheirRunAtPasses) {
  auto j = job();
  j.run_in = 1h;
  const auto id = put(j);
  EXPECT_FALSE(pop());
  sql("UPDATE delayed_jobs SET run_at = run_at - interval '2 hours' WHERE id = " + std::to_string(id));
  EXPECT_EQ(pop()->id, id);
}

TEST_F(StoreReserve, JobLockedByAnotherWorkerIsNotFound) {
  put(job());
  ASSERT_TRUE(pop("worker1"));
  EXPECT_FALSE(pop("worker2"));
}

TEST_F(StoreReserve, FailedJobsAreNotFound) {
  const auto id = put(job());
  const auto j = pop("w");
  store->fail(std::vector<Failure>{{id, "w", "boom", std::nullopt, true, true}});
  EXPECT_FALSE(pop());
  EXPECT_TRUE(store->findFailed(id));
}

TEST_F(StoreReserve, JobsComeInAscendingPriorityThenRunAtThenId) {
  std::vector<JobId> ids;
  for (int p : {5, 1, 3, 1}) {
    auto j = job();
    j.priority = p;
    ids.push_back(put(j));
  }
  std::vector<JobId> got;
  while (auto j = pop()) got.push_back(j->id);
  EXPECT_EQ(got, (std::vector<JobId>{ids[1], ids[3], ids[2], ids[0]}));
}

TEST_F(StoreReserve, PriorityBelowTheRangeIsNeverLocked) {
  for (int p : {5, 10, 15}) {
    auto j = job();
    j.priority = p;
    put(j);
  }
  std::vector<int> got;
  while (auto j = pop("w", "queue", 10, 20)) got.push_back(j->priority);
  EXPECT_EQ(got, (std::vector<int>{10, 15}));
}

TEST_F(StoreReserve, PriorityAboveTheRangeIsNeverLocked) {
  for (int p : {25, 20, 15}) {
    auto j = job();
    j.priority = p;
    put(j);
  }
  std::vector<int> got;
  while (auto j = pop("w", "queue", 10, 20)) got.push_back(j->priority);
  EXPECT_EQ(got, (std::vector<int>{15, 20}));
}

TEST_F(StoreReserve, WorkersOnlyTakeJobsFromTheirQueue) {
  auto j = job();
  j.queue = "queue2";
  put(j);
  EXPECT_FALSE(pop("w", "queue3"));
  EXPECT_FALSE(pop("w", "queue"));
  EXPECT_TRUE(pop("w", "queue2"));
}

TEST_F(StoreReserve, InvalidRequestsAreRejected) {
  ReserveRequest r;
  r.worker_names = {"w"};
  r.queue = "";
  EXPECT_THROW(store->reserve(r), ValidationError);
  r.queue = "queue";
  r.min_priority = -1;
  EXPECT_THROW(store->reserve(r), ValidationError);
  r.min_priority = 0;
  r.max_priority = kMaxPriority + 1;
  EXPECT_THROW(store->reserve(r), ValidationError);
  r.max_priority = kMaxPriority;
  r.prefetch = 2;  // without an owner the extra rows would be stuck (locked_at set, locked_by NULL)
  EXPECT_THROW(store->reserve(r), ValidationError);
}

TEST_F(StoreReserve, NamesGetRowsInFifoOrderAndTheThirdJobStaysUnlocked) {
  const auto a = put(job()), b = put(job()), c = put(job());
  ReserveRequest r;
  r.worker_names = {"worker1", "worker2"};
  const auto res = store->reserve(r);
  ASSERT_EQ(res.assigned.size(), 2u);
  EXPECT_EQ(res.assigned[0].first, "worker1");
  EXPECT_EQ(res.assigned[0].second.id, a);
  EXPECT_EQ(res.assigned[1].first, "worker2");
  EXPECT_EQ(res.assigned[1].second.id, b);
  EXPECT_FALSE(store->find(c)->locked_by);
}

TEST_F(StoreReserve, PrefetchLocksTheRestForTheOwnerInPriorityOrder) {
  std::vector<JobId> ids;
  for (int p : {1, 9, 5, 7, 0, 30}) {
    auto j = job();
    j.priority = p;
    ids.push_back(put(j));
  }
  ReserveRequest r;
  r.worker_names = {"worker1"};
  r.prefetch = 3;
  r.prefetch_owner = "prefetch:host";
  const auto res = store->reserve(r);
  ASSERT_EQ(res.assigned.size(), 1u);
  EXPECT_EQ(res.assigned[0].second.id, ids[4]);
  ASSERT_EQ(res.prefetched.size(), 3u);
  EXPECT_EQ(res.prefetched[0].id, ids[0]);
  EXPECT_EQ(res.prefetched[1].id, ids[2]);
  EXPECT_EQ(res.prefetched[2].id, ids[3]);
  for (const auto& j : res.prefetched) EXPECT_EQ(j.locked_by, "prefetch:host");
  // every row of one reservation shares one locked_at
  EXPECT_EQ(res.prefetched[0].locked_at, res.assigned[0].second.locked_at);
  EXPECT_FALSE(store->find(ids[1])->locked_by);
  EXPECT_FALSE(store->find(ids[5])->locked_by);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_at IS NOT NULL AND locked_by IS NULL"), 0);
}

TEST_F(StoreReserve, ForcedLatencyHidesAJustCreatedJob) {
  put(job());
  ReserveRequest r;
  r.worker_names = {"w"};
  r.forced_latency = 60s;
  EXPECT_TRUE(store->reserve(r).assigned.empty());
  r.forced_latency = 0s;
  EXPECT_EQ(store->reserve(r).assigned.size(), 1u);
}

TEST_F(StoreReserve, ConcurrentReserversNeverShareAJob) {
  std::vector<NewJob> jobs(200, job());
  store->enqueueBulk(jobs);
  std::vector<std::vector<JobId>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto s = connectStore();
      ReserveRequest r;
      r.worker_names = {"w" + std::to_string(t) + ":a", "w" + std::to_string(t) + ":b"};
      r.prefetch = 3;
      r.prefetch_owner = "prefetch:t" + std::to_string(t);
      for (;;) {
        auto res = s->reserve(r);
        if (res.assigned.empty()) break;
        for (auto& [n, j] : res.assigned) got[t].push_back(j.id);
        for (auto& j : res.prefetched) got[t].push_back(j.id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<JobId> all;
  std::size_t total = 0;
  for (auto& v : got) {
    total += v.size();
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(total, 200u);
  EXPECT_EQ(all.size(), 200u);
}

// --- compare-and-set batches ------------------------------------------------------------------------

class StoreLocks : public DbTest {};

TEST_F(StoreLocks, TransferLockMovesOwnershipAndReportsMismatches) {
  const auto a = put(job()), b = put(job());
  ReserveRequest r;
  r.worker_names = {};
  r.prefetch = 2;
  r.prefetch_owner = "prefetch:h";
  ASSERT_EQ(store->reserve(r).prefetched.size(), 2u);
  sql("UPDATE delayed_jobs SET locked_at = locked_at - interval '1 minute'");
  const auto res = store->transferLocks(std::vector<LockTransfer>{
      {a, "prefetch:h", "worker2"}, {b, "prefetch:other", "worker3"}, {999999, "prefetch:h", "w"}});
  EXPECT_EQ(res.applied, std::vector<JobId>{a});
  EXPECT_EQ(res.mismatched, (std::vector<JobId>{b, 999999}));
  const auto ja = store->find(a);
  EXPECT_EQ(ja->locked_by, "worker2");
  EXPECT_EQ(store->find(b)->locked_by, "prefetch:h");
  // locked_at is refreshed: the transfer starts the worker's lease
  EXPECT_GT(*ja->locked_at, *store->find(b)->locked_at);
}

TEST_F(StoreLocks, CompleteDeletesOnlyRowsStillOwnedByTheCaller) {
  const auto a = put(job()), b = put(job()), c = put(job());
  ReserveRequest r;
  r.worker_names = {"w1", "w2", "w3"};
  store->reserve(r);
  store->clearLocks("w3");  // c was unlocked behind the owner's back
  const auto res =
      store->complete(std::vector<OwnedJob>{{a, "w1"}, {b, "wrong"}, {c, "w3"}});
  EXPECT_EQ(res.applied, std::vector<JobId>{a});
  EXPECT_EQ(res.mismatched, (std::vector<JobId>{b, c}));
  EXPECT_FALSE(exists(a));
  EXPECT_TRUE(exists(b));
  EXPECT_TRUE(exists(c));
}

TEST_F(StoreLocks, UnlockClearsBothLockColumnsWithoutCountingAnAttempt) {
  const auto a = put(job()), b = put(job());
  ReserveRequest r;
  r.worker_names = {"w1", "w2"};
  store->reserve(r);
  const auto res = store->unlock(std::vector<OwnedJob>{{a, "w1"}, {b, "w1"}});
  EXPECT_EQ(res.applied, std::vector<JobId>{a});
  EXPECT_EQ(res.mismatched, std::vector<JobId>{b});
  const auto ja = store->find(a);
  EXPECT_FALSE(ja->locked_by);
  EXPECT_FALSE(ja->locked_at);
  EXPECT_EQ(ja->attempts, 0);
  EXPECT_EQ(pop("w3")->id, a);
}

TEST_F(StoreLocks, ClearLocksOnlyTouchesTheNamedWorker) {
  const auto a = put(job());
  ASSERT_TRUE(pop("worker"));
  EXPECT_EQ(store->clearLocks("other"), 0);
  EXPECT_EQ(store->find(a)->locked_by, "worker");
  EXPECT_EQ(store->clearLocks("worker"), 1);
  EXPECT_EQ(pop("w2")->id, a);
}

TEST_F(StoreLocks, EmptyBatchesDoNothing) {
  EXPECT_TRUE(store->complete({}).applied.empty());
  EXPECT_TRUE(store->unlock({}).applied.empty());
  EXPECT_TRUE(store->transferLocks({}).applied.empty());
  EXPECT_TRUE(store->fail({}).empty());
}

TEST_F(StoreLocks, EachBatchIsOneStatement) {
  std::vector<NewJob> jobs(50, job());
  store->enqueueBulk(jobs);
  ReserveRequest r;
  for (int i = 0; i < 50; ++i) r.worker_names.push_back("w" + std::to_string(i));
  // warm up the prepared statements, then count
  store->complete({});
  auto res = store->reserve(r);
  std::vector<OwnedJob> owned;
  for (auto& [n, j] : res.assigned) owned.push_back({j.id, n});
  store->complete(std::vector<OwnedJob>{owned.front()});
  const auto before = store->statementsExecuted();
  store->reserve(r);
  EXPECT_EQ(store->statementsExecuted() - before, 1u);
  store->complete(std::span<const OwnedJob>(owned).subspan(1));
  EXPECT_EQ(store->statementsExecuted() - before, 2u);
}

}  // namespace
}  // namespace hostq::test
