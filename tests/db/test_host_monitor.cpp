// The server's maintenance thread, one step at a time on a real database: heartbeats, the reaper
// of dead hosts (and what it must not touch), the notice of a host that comes back, and periodic
// jobs enqueued once per tick however many servers run them.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/cron.hpp"
#include "server/host_monitor.hpp"
#include "store/pg_connection.hpp"
#include "support/db_fixture.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using hostq::JobId;
using hostq::server::HostMonitor;
using hostq::server::HostMonitorOptions;

class HostMonitorTest : public hostq::test::DbTest {
 protected:
  std::unique_ptr<HostMonitor> monitor(const std::string& host, std::vector<hostq::PeriodicJob> periodic = {},
                                       std::chrono::milliseconds timeout = 3s) const {
    HostMonitorOptions o;
    o.database_url = url();
    o.store.schema = schema();
    o.host = host;
    o.pid = 4242;
    o.host_timeout = timeout;
    o.periodic_jobs = std::move(periodic);
    return std::make_unique<HostMonitor>(std::move(o));
  }
  /// Locks `id` as `locked_by` would (a worker's reservation or a server's prefetch).
  void lockAs(JobId id, const std::string& lockedBy) const {
    sql("UPDATE delayed_jobs SET locked_by = '" + lockedBy + "', locked_at = now() AT TIME ZONE 'UTC' - interval '1 second'"
        " WHERE id = " + std::to_string(id));
  }
  void silence(const std::string& host, int seconds) const {
    sql("UPDATE hostq_hosts SET heartbeat_at = heartbeat_at - interval '" + std::to_string(seconds) +
        " seconds' WHERE hostname = '" + host + "'");
  }
  JobId putWith(int maxAttempts) const {
    auto j = job();
    j.max_attempts = maxAttempts;
    return put(j);
  }
  std::string row(JobId id) const {
    return query("SELECT coalesce(locked_by, '-') || ' ' || attempts || ' ' || coalesce(last_error, '-')"
                 " FROM delayed_jobs WHERE id = " + std::to_string(id));
  }
};

TEST_F(HostMonitorTest, TheReaperReschedulesASilentHostsJobsAndReleasesItsPrefetch) {
  auto dead = monitor("web-1");
  auto alive = monitor("web-2");
  EXPECT_FALSE(dead->beat());
  EXPECT_FALSE(alive->beat());
  const JobId running = putWith(3), lastAttempt = putWith(1), prefetched = putWith(1), ruby = putWith(1),
              other = putWith(1), lookalike = putWith(1);
  lockAs(running, "web-1:100");
  lockAs(lastAttempt, "web-1:101");
  lockAs(prefetched, "prefetch:web-1");
  lockAs(ruby, "rails-3:77");       // an inst-jobs worker: no heartbeat row, never touched
  lockAs(other, "web-2:5");         // a live host
  lockAs(lookalike, "web-1:x");     // not a pid: not one of web-1's workers

  EXPECT_EQ(alive->reapDeadHosts(), 0);  // web-1 is not silent yet
  silence("web-1", 10);
  EXPECT_EQ(alive->reapDeadHosts(), 3);

  EXPECT_EQ(row(running).rfind("- 1 host died: no heartbeat from web-1 for ", 0), 0u) << row(running);
  EXPECT_FALSE(exists(lastAttempt));  // max_attempts 1: the attempt was its last
  EXPECT_EQ(query("SELECT last_error FROM failed_jobs WHERE original_job_id = " + std::to_string(lastAttempt))
                .rfind("host died: ", 0),
            0u);
  EXPECT_EQ(row(prefetched), "- 0 -");  // released, no attempt
  EXPECT_EQ(row(ruby), "rails-3:77 0 -");
  EXPECT_EQ(row(other), "web-2:5 0 -");
  EXPECT_EQ(row(lookalike), "web-1:x 0 -");
  EXPECT_EQ(query("SELECT reaped_at IS NOT NULL FROM hostq_hosts WHERE hostname = 'web-1'"), "t");
  // Reaped once: a lock web-1 takes afterwards (it came back) is its own.
  lockAs(running, "web-1:100");
  EXPECT_EQ(alive->reapDeadHosts(), 0);
  EXPECT_EQ(row(running).rfind("web-1:100 1 ", 0), 0u) << row(running);
}

TEST_F(HostMonitorTest, AHostThatComesBackNoticesOnItsNextBeat) {
  auto host = monitor("web-1");
  auto other = monitor("web-2");
  EXPECT_FALSE(host->beat());
  EXPECT_FALSE(other->beat());
  EXPECT_FALSE(host->beat());
  silence("web-1", 10);
  EXPECT_EQ(other->reapDeadHosts(), 0);
  EXPECT_EQ(query("SELECT declared_dead_at IS NOT NULL FROM hostq_hosts WHERE hostname = 'web-1'"), "t");
  EXPECT_TRUE(host->beat());   // it learns it was declared dead
  EXPECT_FALSE(host->beat());  // once
  EXPECT_EQ(query("SELECT declared_dead_at IS NULL AND reaped_at IS NULL FROM hostq_hosts WHERE hostname = 'web-1'"), "t");
  // A fresh server on a host declared dead starts clean: its first beat says nothing.
  silence("web-1", 10);
  other->reapDeadHosts();
  EXPECT_FALSE(monitor("web-1")->beat());
}

TEST_F(HostMonitorTest, AHostThatNeverDeclaresATimeoutIsNeverDeclaredDead) {
  auto host = monitor("web-1", {}, 0ms);
  auto other = monitor("web-2");
  host->beat();
  silence("web-1", 3600);
  EXPECT_EQ(other->reapDeadHosts(), 0);
  EXPECT_EQ(query("SELECT declared_dead_at IS NULL FROM hostq_hosts WHERE hostname = 'web-1'"), "t");
}

TEST_F(HostMonitorTest, AServerLeavingCleanlySignsItsHostOffUnlessItStillHoldsJobs) {
  auto other = monitor("web-9");
  auto busy = monitor("web-1");
  busy->beat();
  lockAs(put(job()), "web-1:100");  // a worker of web-1 still runs a job
  busy->stop(true);
  auto idle = monitor("web-2");
  idle->beat();
  idle->stop(true);
  EXPECT_EQ(query("SELECT string_agg(hostname || '=' || host_timeout_ms, ',' ORDER BY hostname) FROM hostq_hosts"),
            "web-1=3000,web-2=0");
  silence("web-1", 10);
  silence("web-2", 10);
  EXPECT_EQ(other->reapDeadHosts(), 1);
  EXPECT_EQ(query("SELECT string_agg(hostname, ',') FROM hostq_hosts WHERE declared_dead_at IS NOT NULL"), "web-1");
}

TEST_F(HostMonitorTest, OnlyOneReaperAtATime) {
  auto a = monitor("web-1");
  const std::string key = "half_md5_as_bigint('hostq:reap_dead_hosts:' || current_schema())";
  sql("SELECT pg_advisory_lock(" + key + ")");  // the side connection holds it
  EXPECT_EQ(a->reapDeadHosts(), -1);
  sql("SELECT pg_advisory_unlock(" + key + ")");
  EXPECT_GE(a->reapDeadHosts(), 0);
}

// A reaper lock held round after round (its holder frozen mid-round, say) does not stop the
// reaping for good: after kReaperLockPatience rounds without it, a server reaps anyway, and its
// compare-and-set writes keep a job from being rescheduled twice.
TEST_F(HostMonitorTest, AReaperLockHeldRoundAfterRoundIsNotWaitedForForever) {
  auto gone = monitor("web-1");
  auto a = monitor("web-2");
  EXPECT_FALSE(gone->beat());
  EXPECT_FALSE(a->beat());
  const JobId running = putWith(3);
  lockAs(running, "web-1:4242");
  silence("web-1", 10);
  const std::string key = "half_md5_as_bigint('hostq:reap_dead_hosts:' || current_schema())";
  sql("SELECT pg_advisory_lock(" + key + ")");  // a frozen reaper's session
  for (int i = 1; i < HostMonitor::kReaperLockPatience; ++i) EXPECT_EQ(a->reapDeadHosts(), -1) << "round " << i;
  EXPECT_EQ(a->reapDeadHosts(), 1) << "the dead host's job was not rescheduled";
  EXPECT_EQ(a->reapDeadHosts(), 0) << "a job rescheduled twice";
  EXPECT_EQ(row(running).rfind("- 1 host died: ", 0), 0u) << row(running);
  sql("SELECT pg_advisory_unlock(" + key + ")");
}

TEST_F(HostMonitorTest, EachPeriodicTickIsEnqueuedOnceAcrossServers) {
  const hostq::PeriodicJob nightly{"nightly", "0 3 * * *", "Report#nightly", "p", "reports", 5, 2};
  std::vector<std::unique_ptr<HostMonitor>> servers;
  for (int i = 0; i < 4; ++i) servers.push_back(monitor("web-" + std::to_string(i), {nightly}));
  std::atomic<int> enqueued{0};
  std::vector<std::thread> threads;
  for (auto& s : servers) {
    threads.emplace_back([&, m = s.get()] {
      for (int k = 0; k < 5; ++k) enqueued += m->schedulePeriodic();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(enqueued.load(), 1);
  ASSERT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 1);
  const JobId first = queryInt("SELECT id FROM delayed_jobs");
  auto j = store->find(first);
  EXPECT_EQ(j->singleton, "periodic: nightly");
  EXPECT_EQ(j->tag, "Report#nightly");
  EXPECT_EQ(j->payload, "p");
  EXPECT_EQ(j->queue, "reports");
  EXPECT_EQ(j->priority, 5);
  EXPECT_EQ(j->max_attempts, 2);
  // The next 03:00 UTC after the database's now.
  const auto now = hostq::store::fromMicros(queryInt("SELECT (extract(epoch FROM now()) * 1000000)::int8"));
  EXPECT_EQ(j->run_at, hostq::CronSchedule::parse("0 3 * * *").next(now));

  // Scheduled already: nothing more, however often the audit runs.
  EXPECT_EQ(servers[1]->schedulePeriodic(), 0);
  // The run starts (its row is locked): the next tick gets enqueued, once, a day later.
  sql("UPDATE delayed_jobs SET run_at = run_at - interval '1 day' WHERE id = " + std::to_string(first));
  ASSERT_TRUE(pop("web-0:1", "reports"));
  EXPECT_EQ(servers[2]->schedulePeriodic() + servers[3]->schedulePeriodic(), 1);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE singleton = 'periodic: nightly' AND locked_by IS NULL"), 1);
  // Only a failed run left (the queued next one deleted by hand): the audit repairs it.
  hostq::Failure f = failure(first, "web-0:1");
  f.permanent = true;
  store->fail(std::span(&f, 1));
  sql("DELETE FROM delayed_jobs");
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 1);
  EXPECT_EQ(servers[0]->schedulePeriodic(), 1);
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE singleton = 'periodic: nightly'"), 1);
  // A held run counts as scheduled: the operator paused it.
  sql("UPDATE delayed_jobs SET locked_by = 'on hold'");
  EXPECT_EQ(servers[0]->schedulePeriodic(), 0);
}

TEST_F(HostMonitorTest, ASecondsCronRunsOnTheNextSecond) {
  auto m = monitor("web-1", {hostq::PeriodicJob{"tick", "* * * * * *", "Tick#run", "", "queue", 10, std::nullopt}});
  EXPECT_EQ(m->schedulePeriodic(), 1);
  EXPECT_LE(queryInt("SELECT (extract(epoch FROM run_at - (now() AT TIME ZONE 'UTC')) * 1000)::int8 FROM delayed_jobs"), 1000);
  EXPECT_TRUE(hostq::test::waitUntil([&] { return pop("w:1").has_value(); }, 5s));
}

}  // namespace
