// hostq::Client, the public API for applications: every method against a real PostgreSQL, each
// checked through the fixture's side connection (the rows as they are), not through the Client.
#include <unistd.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "hostq/client.hpp"
#include "support/db_fixture.hpp"

namespace hostq::test {
namespace {

using namespace std::chrono_literals;

class ClientTest : public DbTest {
 protected:
  Client client(ClientOptions o = {}) const {
    o.database_url = url();
    o.schema = schema();
    return Client(std::move(o));
  }
  std::int64_t rows(const std::string& table = "delayed_jobs") const {
    return queryInt("SELECT count(*) FROM " + table);
  }
  // A job failed for good (max_attempts 1), as a worker's failure report leaves it. Its own
  // queue, so that the reservation takes it and not another test job.
  JobId failedJob(const std::string& tag = "Fails#perform") const {
    NewJob j = job(tag);
    j.queue = "failing";
    const JobId id = put(j);
    const auto popped = pop("host:1", "failing");
    EXPECT_TRUE(popped && popped->id == id);
    const auto r = store->fail(std::vector<Failure>{failure(id, "host:1", "boom")});
    EXPECT_EQ(r.at(0).outcome, FailOutcome::MovedToFailedJobs);
    return id;
  }
  static std::vector<JobId> ids(const std::vector<ListedJob>& listed) {
    std::vector<JobId> out;
    for (const auto& l : listed) out.push_back(l.job.id);
    return out;
  }
};

TEST_F(ClientTest, OptionsAreCheckedAndNothingConnectsUntilFirstUse) {
  EXPECT_THROW(client({.default_max_attempts = 0}), ValidationError);
  EXPECT_THROW(client({.reconnect_attempts = -1}), ValidationError);
  // Nobody listens there: the constructor succeeds, the first call reports the connection.
  Client unreachable({.database_url = "host=/nonexistent-hostq-dir port=1", .reconnect_attempts = 0});
  try {
    unreachable.find(1);
    ADD_FAILURE() << "find on an unreachable database returned";
  } catch (const DbError& e) {
    EXPECT_EQ(e.kind(), DbErrorKind::ConnectionLost) << e.what();
  }
}

TEST_F(ClientTest, MovedFromClientRefusesCalls) {
  Client a = client();
  Client b = std::move(a);
  EXPECT_THROW(a.find(1), std::logic_error);  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_FALSE(b.find(1).has_value());
}

TEST_F(ClientTest, MigrateCreatesTheSchemaThenIsANoOp) {
  const std::string fresh = "hostq_client_migrate_" + std::to_string(::getpid());
  sql("DROP SCHEMA IF EXISTS " + fresh + " CASCADE");
  {
    Client c({.database_url = url(), .schema = fresh});
    EXPECT_EQ(c.schemaVersion(), 0);
    EXPECT_GT(c.migrate(), 0);
    EXPECT_EQ(c.schemaVersion(), Client::latestSchemaVersion());
    EXPECT_EQ(c.migrate(), 0);
    EXPECT_GT(c.enqueue(job()).id, 0);
  }
  EXPECT_EQ(queryInt("SELECT count(*) FROM " + fresh + ".delayed_jobs"), 1);
  sql("DROP SCHEMA " + fresh + " CASCADE");
}

TEST_F(ClientTest, EnqueueWritesTheJobWithTheClientsDefaults) {
  auto c = client({.default_max_attempts = 3});
  NewJob j = job("Mail#deliver");
  j.payload = "{\"to\":42}";
  j.queue = "mail";
  j.priority = 5;
  const auto e = c.enqueue(j);
  EXPECT_EQ(e.result, EnqueueResult::Inserted);
  const std::string where = " FROM delayed_jobs WHERE id = " + std::to_string(e.id);
  EXPECT_EQ(query("SELECT tag || '|' || handler || '|' || queue || '|' || priority" + where),
            "Mail#deliver|{\"to\":42}|mail|5");
  EXPECT_EQ(queryInt("SELECT max_attempts" + where), 3);
  j.max_attempts = 7;
  EXPECT_EQ(queryInt("SELECT max_attempts FROM delayed_jobs WHERE id = " + std::to_string(c.enqueue(j).id)), 7);
}

TEST_F(ClientTest, EnqueueRefusesABrokenJobAndWritesNothing) {
  auto c = client();
  EXPECT_THROW(c.enqueue(job("")), ValidationError);
  NewJob blank = job();
  blank.queue = "  ";
  EXPECT_THROW(c.enqueue(blank), ValidationError);
  NewJob both = job();
  both.strand = "s";
  both.n_strand = "n";
  EXPECT_THROW(c.enqueue(both), ValidationError);
  EXPECT_EQ(rows(), 0);
}

TEST_F(ClientTest, EnqueueOfAQueuedSingletonFollowsOnConflict) {
  auto c = client();
  NewJob j = job();
  j.singleton = "report:daily";
  j.run_in = 1h;
  const auto first = c.enqueue(j);
  j.on_conflict = OnConflict::Loose;
  EXPECT_EQ(c.enqueue(j).result, EnqueueResult::Dropped);
  j.on_conflict = OnConflict::Overwrite;
  j.payload = "new";
  const auto over = c.enqueue(j);
  EXPECT_EQ(over.result, EnqueueResult::Updated);
  EXPECT_EQ(over.id, first.id);
  EXPECT_EQ(query("SELECT handler FROM delayed_jobs WHERE id = " + std::to_string(first.id)), "new");
}

TEST_F(ClientTest, EnqueueManyIsAllOrNothing) {
  auto c = client();
  std::vector<NewJob> jobs{job("A"), job("B"), job("C")};
  jobs[1].strand = "s";
  const auto out = c.enqueueMany(jobs);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_LT(out[0].id, out[1].id);
  EXPECT_LT(out[1].id, out[2].id);
  EXPECT_EQ(query("SELECT tag FROM delayed_jobs WHERE id = " + std::to_string(out[1].id)), "B");
  EXPECT_EQ(query("SELECT strand FROM delayed_jobs WHERE id = " + std::to_string(out[1].id)), "s");

  jobs[2].tag.clear();
  EXPECT_THROW(c.enqueueMany(jobs), ValidationError);
  jobs[2].tag = "C";
  jobs[2].priority = -1;
  EXPECT_THROW(c.enqueueMany(jobs), ValidationError);
  EXPECT_EQ(rows(), 3);
}

TEST_F(ClientTest, EnqueueBulkCopiesPlainJobsAndInsertsTheOthers) {
  auto c = client();
  std::vector<NewJob> jobs(250, job("Bulk#run"));
  jobs[7].strand = "bulk-strand";
  jobs[9].payload = "tab\tand\nnewline";
  EXPECT_EQ(c.enqueueBulk(jobs), 250u);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE tag = 'Bulk#run'"), 250);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE strand = 'bulk-strand'"), 1);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE handler = E'tab\\tand\\nnewline'"), 1);
  EXPECT_EQ(c.enqueueBulk({}), 0u);
  jobs[3].tag.clear();
  EXPECT_THROW(c.enqueueBulk(jobs), ValidationError);
  EXPECT_EQ(rows(), 250);
}

TEST_F(ClientTest, EnqueueCopiesReturnsEveryIdAndTakesPlainJobsOnly) {
  auto c = client();
  const auto got = c.enqueueCopies(job("Copy#run"), 40);
  ASSERT_EQ(got.size(), 40u);
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE tag = 'Copy#run' AND id BETWEEN " +
                     std::to_string(got.front()) + " AND " + std::to_string(got.back())),
            40);
  NewJob stranded = job();
  stranded.strand = "s";
  EXPECT_THROW(c.enqueueCopies(stranded, 2), ValidationError);
  EXPECT_THROW(c.enqueueCopies(job(), 0), ValidationError);
  EXPECT_EQ(rows(), 40);
}

TEST_F(ClientTest, FindReadsALiveJobAndFindFailedAFailedOne) {
  auto c = client();
  const JobId live = put(job("Live#run"));
  const auto found = c.find(live);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->tag, "Live#run");
  EXPECT_FALSE(c.find(live + 1000).has_value());

  const JobId gone = failedJob();
  EXPECT_FALSE(c.find(gone).has_value());
  const auto failed = c.findFailed(gone);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->original_job_id, gone);
  EXPECT_EQ(failed->last_error, "boom");
  EXPECT_EQ(c.findFailed(failed->id)->id, failed->id);  // by failed_jobs id too
}

TEST_F(ClientTest, ListSelectsByQueueTagStrandAndState) {
  auto c = client();
  NewJob mail = job("Mail#deliver");
  mail.queue = "mail";
  const JobId m1 = put(mail);
  const JobId m2 = put(mail);
  NewJob later = job("Report#build");
  later.run_in = 1h;
  const JobId future = put(later);
  NewJob s = job("Import#row");
  s.strand = "import";
  const JobId s1 = put(s);
  const JobId s2 = put(s);

  EXPECT_EQ(ids(c.list({.queue = "mail"})), (std::vector<JobId>{m1, m2}));
  EXPECT_EQ(ids(c.list({.tag = "Report#build"})), (std::vector<JobId>{future}));
  EXPECT_EQ(ids(c.list({}, JobState::Future)), (std::vector<JobId>{future}));
  const auto strand = c.list({.strand = "import"});
  ASSERT_EQ(strand.size(), 2u);
  EXPECT_EQ(strand[0].job.id, s1);
  EXPECT_EQ(strand[0].state, JobState::Queued);
  EXPECT_EQ(strand[1].job.id, s2);
  EXPECT_EQ(strand[1].state, JobState::Blocked);
  EXPECT_EQ(ids(c.list({.ids = {m2, s2}})), (std::vector<JobId>{m2, s2}));
  EXPECT_EQ(c.list({}, std::nullopt, 2).size(), 2u);
  // Runnable ones by id first, then the future ones.
  EXPECT_EQ(ids(c.list()), (std::vector<JobId>{m1, m2, s1, s2, future}));

  EXPECT_THROW(c.list({}, std::nullopt, 0), ValidationError);
  EXPECT_THROW(c.list({}, JobState::Failed), ValidationError);
}

TEST_F(ClientTest, ListFailedIsNewestFirst) {
  auto c = client();
  const JobId a = failedJob("A#fail");
  const JobId b = failedJob("B#fail");
  const auto failed = c.listFailed();
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].original_job_id, b);
  EXPECT_EQ(failed[1].original_job_id, a);
  EXPECT_EQ(c.listFailed({.tag = "A#fail"}).size(), 1u);
  EXPECT_THROW(c.listFailed({}, 0), ValidationError);
}

TEST_F(ClientTest, CountsGroupByQueueTagOrStrand) {
  auto c = client();
  NewJob mail = job("Mail#deliver");
  mail.queue = "mail";
  put(mail);
  put(mail);
  NewJob s = job("Import#row");
  s.strand = "import";
  put(s);
  put(s);
  failedJob("Mail#deliver");

  const auto byQueue = c.counts();
  ASSERT_EQ(byQueue.size(), 3u);
  EXPECT_EQ(byQueue[0].key, "failing");
  EXPECT_EQ(byQueue[0].queued, 0);
  EXPECT_EQ(byQueue[0].failed, 1);
  EXPECT_EQ(byQueue[1].key, "mail");
  EXPECT_EQ(byQueue[1].queued, 2);
  EXPECT_EQ(byQueue[2].key, "queue");
  EXPECT_EQ(byQueue[2].queued, 1);
  EXPECT_EQ(byQueue[2].blocked, 1);

  const auto byStrand = c.counts(CountBy::Strand);
  ASSERT_EQ(byStrand.size(), 1u);
  EXPECT_EQ(byStrand[0].key, "import");
  EXPECT_EQ(byStrand[0].queued + byStrand[0].blocked, 2);

  const auto mailTag = c.counts(CountBy::Tag, {.tag = "Mail#deliver"});
  ASSERT_EQ(mailTag.size(), 1u);
  EXPECT_EQ(mailTag[0].queued, 2);
  EXPECT_EQ(mailTag[0].failed, 1);
}

TEST_F(ClientTest, HoldAndUnholdASelection) {
  auto c = client();
  const JobId a = put(job("Hold#me"));
  const JobId b = put(job("Hold#me"));
  const JobId other = put(job("Other#job"));
  const auto running = pop("host:1");  // a, the oldest: locked by a worker, so not held
  ASSERT_TRUE(running && running->id == a);

  EXPECT_EQ(c.hold({.tag = "Hold#me"}), 1);
  EXPECT_EQ(query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(b)), kOnHold);
  EXPECT_EQ(c.list({}, JobState::Held).size(), 1u);
  EXPECT_EQ(c.hold({.ids = {b}}), 0);  // already held
  EXPECT_EQ(query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(other)), "NULL");

  EXPECT_EQ(c.unhold({.ids = {b, other}}), 1);
  EXPECT_EQ(query("SELECT coalesce(locked_by, 'free') || attempts FROM delayed_jobs WHERE id = " +
                  std::to_string(b)),
            "free0");
  EXPECT_THROW(c.hold({}), ValidationError);
  EXPECT_THROW(c.unhold({}), ValidationError);
}

TEST_F(ClientTest, RequeuePutsAFailedJobBackByEitherId) {
  auto c = client();
  const JobId original = failedJob();
  const JobId second = failedJob("Other#fail");
  const JobId again = c.requeue(original);
  EXPECT_NE(again, original);
  const auto job = c.find(again);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->tag, "Fails#perform");
  EXPECT_EQ(job->locked_by, std::nullopt);
  EXPECT_EQ(queryInt("SELECT requeued_job_id FROM failed_jobs WHERE original_job_id = " + std::to_string(original)),
            again);

  const JobId failedId = queryInt("SELECT id FROM failed_jobs WHERE original_job_id = " + std::to_string(second));
  EXPECT_GT(c.requeue(failedId), 0);
  EXPECT_THROW(c.requeue(999'999'999), ValidationError);
}

TEST_F(ClientTest, DestroyLeavesRunningJobsAndDestroyFailedAndCleanupDeleteFailedOnes) {
  auto c = client();
  const JobId running = put(job("Gone#job"));
  ASSERT_TRUE(pop("host:1"));
  const JobId queued = put(job("Gone#job"));
  EXPECT_EQ(c.destroy({.tag = "Gone#job"}), 1);
  EXPECT_TRUE(exists(running));
  EXPECT_FALSE(exists(queued));

  failedJob("F1#fail");
  failedJob("F2#fail");
  EXPECT_EQ(c.destroyFailed({.tag = "F1#fail"}), 1);
  EXPECT_EQ(rows("failed_jobs"), 1);
  EXPECT_EQ(c.cleanupFailed(1h), 0);  // it failed just now
  sql("UPDATE failed_jobs SET failed_at = failed_at - interval '2 hours'");
  EXPECT_EQ(c.cleanupFailed(1h), 1);
  EXPECT_EQ(rows("failed_jobs"), 0);

  EXPECT_THROW(c.destroy({}), ValidationError);
  EXPECT_THROW(c.destroyFailed({}), ValidationError);
  EXPECT_THROW(c.cleanupFailed(-1s), ValidationError);
}

}  // namespace
}  // namespace hostq::test
