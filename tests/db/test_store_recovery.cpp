// Recovery and maintenance: orphaned jobs of dead pids (§3.5, §7.7 107–109), prefetch purge
// (§3.6, §7.9 22), reschedule by name, hold/unhold (§6.5, §7.7 76, 100–102), lists and counts.
#include <sys/wait.h>
#include <unistd.h>

#include "support/db_fixture.hpp"

namespace hostq::test {
namespace {

using namespace std::chrono_literals;

int deadPid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

class StoreRecovery : public DbTest {
 protected:
  JobId lockedBy(const std::string& name, int maxAttempts = 1) {
    auto j = job();
    j.max_attempts = maxAttempts;
    const auto id = put(j);
    sql("UPDATE delayed_jobs SET locked_by = '" + name + "', locked_at = now() AT TIME ZONE 'UTC'"
        " WHERE id = " + std::to_string(id));
    return id;
  }
};

TEST_F(StoreRecovery, UnlockOrphanedJobsOnlyReschedulesJobsOfDeadPidsOnThisHost) {
  const int dead = deadPid();
  const auto orphan = lockedBy("Jobworker:" + std::to_string(dead), 5);
  const auto live = lockedBy("Jobworker:" + std::to_string(getpid()), 5);
  const auto otherHost = lockedBy("Otherhost:" + std::to_string(dead), 5);
  const auto notANumber = lockedBy("Jobworker:notanumber", 5);
  const auto likeTrap = lockedBy("Jobworker2:" + std::to_string(dead), 5);
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker"), 1);
  const auto j = store->find(orphan);
  EXPECT_FALSE(j->locked_by);
  EXPECT_EQ(j->attempts, 1);  // "process died" counts as an attempt
  EXPECT_EQ(j->last_error, "process died");
  for (auto id : {live, otherHost, notANumber, likeTrap}) EXPECT_TRUE(store->find(id)->locked_by) << id;
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker"), 0);
}

TEST_F(StoreRecovery, OrphanAtMaxAttemptsFailsPermanentlyWithoutLooping) {
  const auto orphan = lockedBy("Jobworker:" + std::to_string(deadPid()));
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker"), 1);
  EXPECT_FALSE(store->find(orphan));
  EXPECT_EQ(store->findFailed(orphan)->last_error, "process died");
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker"), 0);
}

TEST_F(StoreRecovery, UnlockOrphanedJobsWithAPidOnlyTouchesThatPid) {
  const int dead = deadPid();
  const int otherDead = deadPid();
  lockedBy("Jobworker:" + std::to_string(dead), 5);
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker", otherDead), 0);
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker", dead), 1);
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker", dead), 0);
}

TEST_F(StoreRecovery, LivePidThatStartedAfterTheLockIsAReusedPid) {
  // Our own pid is alive, but this lock is older than our process: its owner must have died
  // and the pid been reused.
  const auto id = lockedBy("Jobworker:" + std::to_string(getpid()), 5);
  sql("UPDATE delayed_jobs SET locked_at = locked_at - interval '1 day' WHERE id = " + std::to_string(id));
  EXPECT_EQ(store->unlockOrphanedJobs("Jobworker"), 1);
  EXPECT_FALSE(store->find(id)->locked_by);
}

TEST_F(StoreRecovery, RescheduleLockedByCountsAnAttemptForExactlyThoseNames) {
  const auto a = lockedBy("h:1", 5), b = lockedBy("h:2", 5), c = lockedBy("h:10", 5);
  const std::vector<std::string> names{"h:1", "h:2"};
  EXPECT_EQ(store->rescheduleLockedBy(names, "worker vanished"), 2);
  EXPECT_EQ(store->find(a)->attempts, 1);
  EXPECT_EQ(store->find(b)->last_error, "worker vanished");
  EXPECT_EQ(store->find(c)->locked_by, "h:10");
}

TEST_F(StoreRecovery, PrefetchPurgeUnlocksOnlyOldPrefetchLocks) {
  const auto old = lockedBy("prefetch:hostA");
  const auto fresh = lockedBy("prefetch:hostB");
  const auto worker = lockedBy("hostA:1");
  sql("UPDATE delayed_jobs SET locked_at = locked_at - interval '15 minutes' WHERE id IN (" +
      std::to_string(old) + "," + std::to_string(worker) + ")");
  EXPECT_EQ(store->unlockOrphanedPrefetchedJobs(120s), 1);
  EXPECT_FALSE(store->find(old)->locked_by);
  EXPECT_TRUE(store->find(fresh)->locked_by);
  EXPECT_TRUE(store->find(worker)->locked_by);
  EXPECT_EQ(store->unlockOrphanedPrefetchedJobs(120s), 0);
}

TEST_F(StoreRecovery, PrefetchPurgeReturnsNulloptWhenAnotherProcessHoldsTheLock) {
  auto other = connectStore();
  other->exec("BEGIN; SELECT pg_advisory_xact_lock(half_md5_as_bigint('Delayed::Job.unlock_orphaned_prefetched_jobs'))");
  EXPECT_EQ(store->unlockOrphanedPrefetchedJobs(120s), std::nullopt);
  other->exec("COMMIT");
  EXPECT_EQ(store->unlockOrphanedPrefetchedJobs(120s), 0);
}

TEST_F(StoreRecovery, HeldJobIsNotLockableUntilUnheld) {
  const auto id = put(job());
  const std::vector<JobId> ids{id};
  EXPECT_EQ(store->hold(ids), 1);
  const auto held = store->find(id);
  EXPECT_EQ(held->locked_by, kOnHold);
  EXPECT_EQ(held->attempts, 50);
  EXPECT_FALSE(pop());
  EXPECT_EQ(store->unhold(ids), 1);
  const auto j = store->find(id);
  EXPECT_EQ(j->attempts, 0);
  EXPECT_FALSE(j->locked_by);
  EXPECT_EQ(pop()->id, id);
}

TEST_F(StoreRecovery, LockedJobsAreNeitherHeldNorUnheld) {
  const auto id = put(job());
  ASSERT_TRUE(pop("w"));
  const std::vector<JobId> ids{id};
  EXPECT_EQ(store->hold(ids), 0);
  EXPECT_EQ(store->unhold(ids), 0);
  EXPECT_EQ(store->find(id)->locked_by, "w");
}

TEST_F(StoreRecovery, UnholdMovesAPastRunAtToNow) {
  const auto id = put(job());
  sql("UPDATE delayed_jobs SET run_at = run_at - interval '1 day'");
  const std::vector<JobId> ids{id};
  store->hold(ids);
  store->unhold(ids);
  EXPECT_LT(std::stod(query("SELECT extract(epoch FROM now() AT TIME ZONE 'UTC' - run_at) FROM delayed_jobs")), 5.0);
}

// --- lists and counts ---------------------------------------------------------------------------

TEST_F(StoreRecovery, ListCurrentReturnsRunnableJobsOfTheQueueAndPaginates) {
  std::vector<JobId> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(put(job()));
  auto fut = job();
  fut.run_in = 1h;
  put(fut);
  auto other = job();
  other.queue = "other";
  put(other);
  auto st = job();
  st.strand = "s";
  const auto stranded = put(st);
  ids.push_back(stranded);
  const auto all = store->list(ListFlavor::Current, "queue", 100, 0);
  EXPECT_EQ(all.size(), 6u);
  const auto page = store->list(ListFlavor::Current, "queue", 2, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, ids[2]);
  EXPECT_EQ(store->list(ListFlavor::Current, "other", 100, 0).size(), 1u);
}

TEST_F(StoreRecovery, ListFutureIsSortedByRunAt) {
  auto a = job();
  a.run_in = 2h;
  auto b = job();
  b.run_in = 1h;
  const auto ia = put(a), ib = put(b);
  const auto l = store->list(ListFlavor::Future, "queue", 10, 0);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].id, ib);
  EXPECT_EQ(l[1].id, ia);
}

TEST_F(StoreRecovery, ListRunningIsOrderedByLockedAtAndSkipsHeldJobs) {
  const auto a = lockedBy("w:1"), b = lockedBy("w:2");
  sql("UPDATE delayed_jobs SET locked_at = locked_at - interval '1 hour' WHERE id = " + std::to_string(b));
  const auto held = put(job());
  store->hold(std::vector<JobId>{held});
  const auto l = store->list(ListFlavor::Running, "", 10, 0);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].id, b);
  EXPECT_EQ(l[1].id, a);
}

TEST_F(StoreRecovery, ListStrandTagAndFailedSelectTheirJobs) {
  auto st = job("Tagged#run");
  st.strand = "s1";
  const auto a = put(st), b = put(st);
  put(job("Other#run"));
  EXPECT_EQ(store->list(ListFlavor::Strand, "s1", 10, 0).size(), 2u);
  EXPECT_EQ(store->list(ListFlavor::Strand, "s1", 1, 1)[0].id, b);
  EXPECT_EQ(store->list(ListFlavor::Tag, "Tagged#run", 10, 0).size(), 2u);
  ASSERT_EQ(pop("w")->id, a);
  store->fail(std::vector<Failure>{failure(a, "w", "x")});
  const auto failed = store->list(ListFlavor::Failed, "", 10, 0);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].original_job_id, a);
}

TEST_F(StoreRecovery, CountsSplitEachQueueByState) {
  put(job());                                   // queued
  auto f = job(); f.run_in = 1h; put(f);        // future
  auto s = job(); s.strand = "s"; put(s); put(s);  // one queued, one blocked
  lockedBy("w:1");                              // running
  lockedBy("prefetch:h");                       // prefetched
  store->hold(std::vector<JobId>{put(job())});  // on hold
  auto o = job(); o.queue = "other"; const auto oid = put(o);
  ASSERT_EQ(pop("w", "other")->id, oid);
  store->fail(std::vector<Failure>{failure(oid, "w", "x")});  // failed in "other"
  const auto c = store->counts();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].queue, "other");
  EXPECT_EQ(c[0].failed, 1);
  EXPECT_EQ(c[0].queued, 0);
  EXPECT_EQ(c[1].queue, "queue");
  EXPECT_EQ(c[1].queued, 2);
  EXPECT_EQ(c[1].future, 1);
  EXPECT_EQ(c[1].blocked, 1);
  EXPECT_EQ(c[1].running, 1);
  EXPECT_EQ(c[1].prefetched, 1);
  EXPECT_EQ(c[1].on_hold, 1);
  EXPECT_EQ(c[1].failed, 0);
}

TEST_F(StoreRecovery, HasRunnableSeesOnlyRunnableJobsInRange) {
  EXPECT_FALSE(store->hasRunnable("queue", 0, kMaxPriority));
  auto j = job();
  j.priority = 30;
  put(j);
  EXPECT_TRUE(store->hasRunnable("queue", 0, kMaxPriority));
  EXPECT_FALSE(store->hasRunnable("queue", 0, 20));
  EXPECT_FALSE(store->hasRunnable("other", 0, kMaxPriority));
}

}  // namespace
}  // namespace hostq::test
