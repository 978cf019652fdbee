// Failure handling (inst-jobs reschedule / permanent_failure / fail!, §4.3, §6.5, §7.8 9–22).
#include <cmath>

#include "support/db_fixture.hpp"

namespace hostq::test {
namespace {

using namespace std::chrono_literals;

class StoreFail : public DbTest {
 protected:
  std::pair<JobId, std::string> running(NewJob j) {
    const auto id = put(j);
    const auto got = pop("host:42");
    EXPECT_TRUE(got);
    EXPECT_EQ(got->id, id);
    return {id, "host:42"};
  }
  FailResult failOne(JobId id, std::string by, std::string error = "boom", bool count = true,
                     bool permanent = false, std::optional<TimePoint> at = std::nullopt) {
    return store->fail(std::vector<Failure>{{id, std::move(by), std::move(error), at, count, permanent}})[0];
  }
  double secondsUntilRunAt(JobId id) {
    return std::stod(query("SELECT extract(epoch FROM run_at - now() AT TIME ZONE 'UTC') FROM delayed_jobs"
                           " WHERE id = " + std::to_string(id)));
  }
};

TEST_F(StoreFail, FailureBelowMaxAttemptsReschedulesWithBackoff) {
  auto j = job();
  j.max_attempts = 5;
  auto [id, by] = running(j);
  const auto r = failOne(id, by, "divided by 0");
  EXPECT_EQ(r.outcome, FailOutcome::Rescheduled);
  EXPECT_EQ(r.attempts, 1);
  const auto got = store->find(id);
  EXPECT_EQ(got->attempts, 1);
  EXPECT_EQ(got->last_error, "divided by 0");
  EXPECT_FALSE(got->locked_by);
  EXPECT_FALSE(got->locked_at);
  EXPECT_NEAR(secondsUntilRunAt(id), 1 + 5, 1.0);  // attempts^4 + 5 s
  sql("UPDATE delayed_jobs SET run_at = run_at - interval '1 minute'");
  ASSERT_EQ(pop("host:42")->id, id);
  EXPECT_EQ(failOne(id, by).attempts, 2);
  EXPECT_NEAR(secondsUntilRunAt(id), 16 + 5, 1.0);
}

TEST_F(StoreFail, ExplicitRunAtOverridesTheBackoff) {
  auto j = job();
  j.max_attempts = 5;
  auto [id, by] = running(j);
  const auto at = TimePoint(std::chrono::microseconds(
      queryInt("SELECT (extract(epoch FROM now() AT TIME ZONE 'UTC' + interval '1 hour') * 1000000)::int8")));
  failOne(id, by, "later", true, false, at);
  EXPECT_EQ(store->find(id)->run_at, at);
}

TEST_F(StoreFail, FailureAtMaxAttemptsMovesTheJobToFailedJobs) {
  auto [id, by] = running(job());  // default max_attempts 1
  const auto before = store->find(id);
  const auto r = failOne(id, by, "message\nbacktrace");
  EXPECT_EQ(r.outcome, FailOutcome::MovedToFailedJobs);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_FALSE(store->find(id));
  const auto f = store->findFailed(id);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->original_job_id, id);
  EXPECT_EQ(f->last_error, "message\nbacktrace");
  EXPECT_EQ(f->attempts, 1);
  EXPECT_TRUE(f->failed_at);
  EXPECT_EQ(f->locked_by, by);  // kept as a record of who ran it
  EXPECT_EQ(f->locked_at, before->locked_at);
  EXPECT_EQ(f->payload, before->payload);
  EXPECT_EQ(f->run_at, before->run_at);
}

TEST_F(StoreFail, JobIsNotFailedBeforeItsOwnMaxAttempts) {
  auto j = job();
  j.max_attempts = 2;
  auto [id, by] = running(j);
  EXPECT_EQ(failOne(id, by).outcome, FailOutcome::Rescheduled);
  sql("UPDATE delayed_jobs SET run_at = run_at - interval '1 minute'");
  ASSERT_TRUE(pop("host:42"));
  EXPECT_EQ(failOne(id, by).outcome, FailOutcome::MovedToFailedJobs);
}

TEST_F(StoreFail, NullMaxAttemptsFallsBackToTheConfiguredDefault) {
  auto s = connectStore([] { StoreOptions o; o.default_max_attempts = 3; return o; }());
  const auto id = put(job());
  sql("UPDATE delayed_jobs SET max_attempts = NULL");
  ASSERT_TRUE(pop("w"));
  EXPECT_EQ(s->fail(std::vector<Failure>{failure(id, "w", "x")})[0].outcome, FailOutcome::Rescheduled);
  sql("UPDATE delayed_jobs SET attempts = 2, locked_by = 'w', locked_at = now()");
  EXPECT_EQ(s->fail(std::vector<Failure>{failure(id, "w", "x")})[0].outcome, FailOutcome::MovedToFailedJobs);
}

TEST_F(StoreFail, ExpiredJobFailsPermanentlyOnReschedule) {
  auto j = job();
  j.max_attempts = 5;
  j.expires_at = TimePoint(std::chrono::microseconds(1'000'000));
  auto [id, by] = running(j);
  EXPECT_EQ(failOne(id, by).outcome, FailOutcome::MovedToFailedJobs);
}

TEST_F(StoreFail, PermanentFlagFailsRegardlessOfAttempts) {
  auto j = job();
  j.max_attempts = 5;
  auto [id, by] = running(j);
  EXPECT_EQ(failOne(id, by, "JobExpired", true, true).outcome, FailOutcome::MovedToFailedJobs);
}

TEST_F(StoreFail, UncountedFailureKeepsTheAttemptCount) {
  auto [id, by] = running(job());
  const auto r = failOne(id, by, "unlock me", false);
  EXPECT_EQ(r.outcome, FailOutcome::Rescheduled);
  EXPECT_EQ(store->find(id)->attempts, 0);
}

TEST_F(StoreFail, WithoutKeepFailedJobsThePermanentFailureDeletes) {
  auto s = connectStore([] { StoreOptions o; o.keep_failed_jobs = false; return o; }());
  auto [id, by] = running(job());
  EXPECT_EQ(s->fail(std::vector<Failure>{failure(id, by, "x")})[0].outcome, FailOutcome::Deleted);
  EXPECT_FALSE(store->find(id));
  EXPECT_FALSE(store->findFailed(id));
}

TEST_F(StoreFail, FailIsACompareAndSetOnLockedBy) {
  auto [id, by] = running(job());
  const auto r = store->fail(std::vector<Failure>{failure(id, "someone-else", "x"), failure(424242, by, "x")});
  EXPECT_EQ(r[0].outcome, FailOutcome::Mismatch);
  EXPECT_EQ(r[1].outcome, FailOutcome::Mismatch);
  EXPECT_EQ(store->find(id)->locked_by, by);
}

TEST_F(StoreFail, MixedBatchIsOneStatement) {
  auto j = job();
  j.max_attempts = 3;
  const auto a = put(j);
  const auto b = put(job());
  const auto c = put(job());
  ReserveRequest r;
  r.worker_names = {"w1", "w2", "w3"};
  store->reserve(r);
  store->fail(std::vector<Failure>{failure(c, "w3", "warm-up")});
  const auto before = store->statementsExecuted();
  const auto res = store->fail(std::vector<Failure>{failure(a, "w1", "x"), failure(b, "w2", "y"), failure(c, "w3", "gone")});
  EXPECT_EQ(store->statementsExecuted() - before, 1u);
  EXPECT_EQ(res[0].outcome, FailOutcome::Rescheduled);
  EXPECT_EQ(res[1].outcome, FailOutcome::MovedToFailedJobs);
  EXPECT_EQ(res[2].outcome, FailOutcome::Mismatch);
}

TEST_F(StoreFail, FailingAStrandedJobCopiesItWithoutTriggersOnFailedJobs) {
  auto j = job();
  j.strand = "s";
  auto [id, by] = running(j);
  EXPECT_EQ(failOne(id, by).outcome, FailOutcome::MovedToFailedJobs);
  EXPECT_EQ(store->findFailed(id)->strand, "s");
  // inst-jobs inserts stranded failed rows without the strand lock: failed_jobs has no triggers.
  EXPECT_EQ(queryInt("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'failed_jobs'::regclass"), 0);
}

TEST_F(StoreFail, RequeuedFailedJobKeepsAttemptsAndRecordsTheNewId) {
  auto [id, by] = running(job());
  failOne(id, by);
  const auto failed = store->findFailed(id);
  const auto newId = store->requeueFailed(failed->id);
  EXPECT_NE(newId, id);
  const auto again = store->find(newId);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempts, 1);
  EXPECT_EQ(again->payload, failed->payload);
  EXPECT_FALSE(again->locked_by);
  EXPECT_FALSE(again->last_error);
  EXPECT_EQ(store->findFailed(id)->requeued_job_id, newId);
  // it runs once more, then fails permanently again
  ASSERT_EQ(pop("w")->id, newId);
  EXPECT_EQ(store->fail(std::vector<Failure>{failure(newId, "w", "again")})[0].outcome,
            FailOutcome::MovedToFailedJobs);
  EXPECT_THROW(store->requeueFailed(987654), ValidationError);
}

}  // namespace
}  // namespace hostq::test
