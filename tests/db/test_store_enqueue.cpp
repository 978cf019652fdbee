// Enqueue: defaults, validation, strands and n_strands at insert time, singletons' on_conflict.
#include <atomic>
#include <thread>

#include "support/db_fixture.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

using namespace std::chrono_literals;

class StoreEnqueue : public DbTest {
 protected:
  TimePoint dbNow() const {
    return TimePoint(std::chrono::microseconds(
        queryInt("SELECT (extract(epoch FROM now() AT TIME ZONE 'UTC') * 1000000)::int8")));
  }
};

TEST_F(StoreEnqueue, RunAtDefaultsToTheDatabaseClock) {
  const auto before = dbNow();
  const auto id = put(job());
  const auto after = dbNow();
  const auto j = store->find(id);
  ASSERT_TRUE(j);
  EXPECT_GE(j->run_at, before);
  EXPECT_LE(j->run_at, after);
  EXPECT_EQ(j->attempts, 0);
  EXPECT_EQ(j->queue, "queue");
  EXPECT_EQ(j->priority, kNormalPriority);
  EXPECT_EQ(j->max_attempts, 1);
  EXPECT_TRUE(j->next_in_strand);
}

TEST_F(StoreEnqueue, ExplicitRunAtIsKept) {
  auto j = job();
  j.run_at = TimePoint(std::chrono::microseconds(1'700'000'000'123'456));
  const auto id = put(j);
  EXPECT_EQ(store->find(id)->run_at, *j.run_at);
}

TEST_F(StoreEnqueue, RunInIsRelativeToTheDatabaseClock) {
  auto j = job();
  j.run_in = 1h;
  const auto before = dbNow();
  const auto id = put(j);
  const auto runAt = store->find(id)->run_at;
  EXPECT_GE(runAt, before + 1h);
  EXPECT_LE(runAt, dbNow() + 1h);
}

TEST_F(StoreEnqueue, PriorityExpiresAtSourceAndPayloadAreStored) {
  auto j = job("Story#save");
  j.priority = 20;
  j.expires_at = TimePoint(std::chrono::microseconds(1'900'000'000'000'000));
  j.source = "web:1";
  j.payload = "tab\there\nnewline \\ backslash 'quote' \"dq\"";
  const auto id = put(j);
  const auto got = store->find(id);
  EXPECT_EQ(got->priority, 20);
  EXPECT_EQ(got->expires_at, j.expires_at);
  EXPECT_EQ(got->source, "web:1");
  EXPECT_EQ(got->payload, j.payload);
  EXPECT_EQ(got->tag, "Story#save");
}

TEST_F(StoreEnqueue, BlankQueueIsRejected) {
  auto j = job();
  j.queue = "  ";
  EXPECT_THROW(store->enqueue(j), ValidationError);
  j.queue = "";
  EXPECT_THROW(store->enqueue(j), ValidationError);
}

TEST_F(StoreEnqueue, PriorityOutsideTheRangeIsRejected) {
  auto j = job();
  j.priority = -1;
  EXPECT_THROW(store->enqueue(j), ValidationError);
  j.priority = kMaxPriority + 1;
  EXPECT_THROW(store->enqueue(j), ValidationError);
  j.priority = kMaxPriority;
  EXPECT_NO_THROW(store->enqueue(j));
}

TEST_F(StoreEnqueue, StrandTogetherWithNStrandIsRejected) {
  auto j = job();
  j.strand = "s";
  j.n_strand = "n";
  EXPECT_THROW(store->enqueue(j), ValidationError);
}

TEST_F(StoreEnqueue, OnConflictWithoutSingletonIsRejected) {
  auto j = job();
  j.on_conflict = OnConflict::Overwrite;
  EXPECT_THROW(store->enqueue(j), ValidationError);
}

TEST_F(StoreEnqueue, StrandedRunAtFifteenMinutesAheadIsRejected) {
  auto j = job();
  j.strand = "s";
  j.run_in = 15min;
  EXPECT_THROW(store->enqueue(j), ValidationError);
  j.run_in.reset();
  j.run_at = dbNow() + 15min;
  EXPECT_THROW(store->enqueue(j), ValidationError);
  j.strand.reset();
  j.n_strand = "n";
  EXPECT_THROW(store->enqueue(j), ValidationError);
}

TEST_F(StoreEnqueue, StrandedRunAtWithinTheGracePeriodIsAllowed) {
  auto j = job();
  j.strand = "s";
  j.run_at = dbNow() + 5s;
  EXPECT_NO_THROW(store->enqueue(j));
  j.run_at.reset();
  j.run_in = 5s;
  EXPECT_NO_THROW(store->enqueue(j));
}

TEST_F(StoreEnqueue, ValidationFailureInEnqueueManyInsertsNothing) {
  std::vector<NewJob> jobs{job(), job(), job()};
  jobs[2].queue = "";
  EXPECT_THROW(store->enqueueMany(jobs), ValidationError);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
}

TEST_F(StoreEnqueue, EnqueueManyIsOneTransactionAndReturnsIdsInOrder) {
  std::vector<NewJob> jobs{job("a"), job("b"), job("c")};
  jobs[1].strand = "s";
  const auto out = store->enqueueMany(jobs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_LT(out[0].id, out[1].id);
  EXPECT_LT(out[1].id, out[2].id);
  EXPECT_EQ(store->find(out[1].id)->tag, "b");
  for (const auto& e : out) EXPECT_EQ(e.result, EnqueueResult::Inserted);
}

TEST_F(StoreEnqueue, BulkEnqueueCopiesPlainJobsAndInsertsTheRest) {
  std::vector<NewJob> jobs;
  for (int i = 0; i < 1000; ++i) {
    auto j = job("bulk" + std::to_string(i % 3));
    j.payload = "line\twith\ttabs\nand \\ backslash " + std::to_string(i);
    j.priority = i % 7;
    if (i == 5) j.strand = "bulk-strand";
    if (i == 6) j.run_in = 1h;
    jobs.push_back(j);
  }
  EXPECT_EQ(store->enqueueBulk(jobs), 1000u);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 1000);
  EXPECT_EQ(query("SELECT handler FROM delayed_jobs WHERE handler LIKE '%backslash 17'"),
            jobs[17].payload);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE strand = 'bulk-strand'"), 1);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE run_at > now() AT TIME ZONE 'UTC' + interval '50 minutes'"), 1);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE created_at IS NULL OR max_attempts IS NULL"), 0);
}

TEST_F(StoreEnqueue, NStrandNameBecomesTheStrandWithItsMaxConcurrent) {
  auto j = job();
  j.n_strand = "njobs/123";
  j.max_concurrent = 3;
  const auto id = put(j);
  const auto got = store->find(id);
  EXPECT_EQ(got->strand, "njobs/123");
  EXPECT_EQ(got->max_concurrent, 3);
  auto k = job();
  k.n_strand = "njobs";
  EXPECT_EQ(store->find(put(k))->max_concurrent, 1);
}

TEST_F(StoreEnqueue, StrandedInsertTakesTheStrandLockInTheSameStatement) {
  // Hold the strand's advisory lock elsewhere: the insert must wait for it (inst-jobs §7.9 #30).
  auto other = connectStore();
  other->exec("BEGIN; SELECT pg_advisory_xact_lock(half_md5_as_bigint('locked-strand'))");
  std::atomic<bool> done{false};
  std::thread t([&] {
    auto s = connectStore();
    auto j = job();
    j.strand = "locked-strand";
    s->enqueue(j);
    done = true;
  });
  EXPECT_TRUE(waitUntil([&] {
    return queryInt("SELECT count(*) FROM pg_locks, (SELECT half_md5_as_bigint('locked-strand') k) x"
                    " WHERE locktype = 'advisory' AND NOT granted"
                    " AND classid::int8 = (k >> 32) & 4294967295 AND objid::int8 = k & 4294967295") > 0;
  }));
  EXPECT_FALSE(done.load());
  other->exec("COMMIT");
  t.join();
  EXPECT_TRUE(done.load());
}

// --- singletons (§7.7 48–62) ----------------------------------------------------------------------

class StoreSingletonEnqueue : public StoreEnqueue {
 protected:
  NewJob single(std::optional<OnConflict> c = std::nullopt) {
    auto j = job();
    j.singleton = "myjobs";
    j.on_conflict = c;
    return j;
  }
};

TEST_F(StoreSingletonEnqueue, IsCreatedWhenNoneExistsAndIsLockable) {
  const auto e = store->enqueue(single());
  EXPECT_EQ(e.result, EnqueueResult::Inserted);
  const auto j = pop();
  ASSERT_TRUE(j);
  EXPECT_EQ(j->id, e.id);
}

TEST_F(StoreSingletonEnqueue, IsCreatedWhenTheExistingOneIsRunning) {
  const auto first = store->enqueue(single()).id;
  ASSERT_TRUE(pop());
  const auto second = store->enqueue(single());
  EXPECT_EQ(second.result, EnqueueResult::Inserted);
  EXPECT_NE(second.id, first);
}

TEST_F(StoreSingletonEnqueue, IsDroppedWhenAQueuedOneExists) {
  store->enqueue(single());
  auto later = single();
  later.run_in = 1h;
  EXPECT_EQ(store->enqueue(later).result, EnqueueResult::Dropped);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 1);
}

TEST_F(StoreSingletonEnqueue, ThirdIsNotCreatedWhileOneRunsAndOneIsQueued) {
  store->enqueue(single());
  ASSERT_TRUE(pop());
  store->enqueue(single());
  auto third = single();
  third.run_in = 1h;
  EXPECT_EQ(store->enqueue(third).result, EnqueueResult::Dropped);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 2);
}

TEST_F(StoreSingletonEnqueue, EarlierRunAtMovesTheQueuedOneByDefault) {
  auto first = single();
  first.run_in = 1h;
  const auto id = store->enqueue(first).id;
  const auto again = store->enqueue(single());
  EXPECT_EQ(again.result, EnqueueResult::Updated);
  EXPECT_EQ(again.id, id);
  EXPECT_EQ(pop()->id, id);
}

TEST_F(StoreSingletonEnqueue, LaterRunAtIsIgnoredByDefaultAndAppliedWithOverwrite) {
  const auto id = store->enqueue(single()).id;
  const auto t1 = store->find(id)->run_at;
  auto later = single();
  later.run_in = 1h;
  EXPECT_EQ(store->enqueue(later).result, EnqueueResult::Dropped);
  EXPECT_EQ(store->find(id)->run_at, t1);
  later.on_conflict = OnConflict::Overwrite;
  const auto e = store->enqueue(later);
  EXPECT_EQ(e.result, EnqueueResult::Updated);
  EXPECT_EQ(e.id, id);
  EXPECT_GT(store->find(id)->run_at, t1 + 59min);
}

TEST_F(StoreSingletonEnqueue, OverwriteReplacesTheHandler) {
  const auto id = store->enqueue(single()).id;
  auto j = single(OnConflict::Overwrite);
  j.payload = "new handler";
  EXPECT_EQ(store->enqueue(j).result, EnqueueResult::Updated);
  EXPECT_EQ(store->find(id)->payload, "new handler");
}

TEST_F(StoreSingletonEnqueue, ResultIsInsertedForANewSingletonEvenWithOverwrite) {
  EXPECT_EQ(store->enqueue(single(OnConflict::Overwrite)).result, EnqueueResult::Inserted);
}

TEST_F(StoreSingletonEnqueue, ResultIsDroppedForLooseAndPatientOverAnExistingOne) {
  store->enqueue(single());
  EXPECT_EQ(store->enqueue(single(OnConflict::Loose)).result, EnqueueResult::Dropped);
  auto earlier = single(OnConflict::Patient);
  earlier.run_at = TimePoint(std::chrono::microseconds(1'000'000));
  EXPECT_EQ(store->enqueue(earlier).result, EnqueueResult::Dropped);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 1);
}

TEST_F(StoreSingletonEnqueue, StrandedSingletonReportsUpdatedForOverwriteAndDroppedForLoose) {
  auto j = single();
  j.strand = "s";
  EXPECT_EQ(store->enqueue(j).result, EnqueueResult::Inserted);
  j.on_conflict = OnConflict::Overwrite;
  EXPECT_EQ(store->enqueue(j).result, EnqueueResult::Updated);
  j.on_conflict = OnConflict::Loose;
  EXPECT_EQ(store->enqueue(j).result, EnqueueResult::Dropped);
}

TEST_F(StoreSingletonEnqueue, PlainStrandJobsReportInserted) {
  auto j = job();
  j.strand = "s";
  EXPECT_EQ(store->enqueue(j).result, EnqueueResult::Inserted);
  EXPECT_EQ(store->enqueue(j).result, EnqueueResult::Inserted);
}

}  // namespace
}  // namespace hostq::test
