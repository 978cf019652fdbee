// The server with held-lock batches (the default; docs/server.md "Held-lock batches") against a
// real `hostq server`: one claim serves many waiting workers and writes nothing, a job that runs
// past the batch bound is promoted to a written lock (and so listed as running), singletons keep
// the written-lock claim, and strands run in order. (A TERM with batches open:
// test_server_faults.cpp.)
#include <gtest/gtest.h>

#include <set>

#include "support/server_harness.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

class ServerHeld : public ServerTest {};

TEST_F(ServerHeld, OneClaimServesManyWaitingWorkersAndWritesNoLock) {
  auto server = startServer({"--held-batches", "2", "--batch-max-open", "30s"});
  constexpr int kClients = 4;
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    auto c = std::make_unique<TestClient>();
    ASSERT_TRUE(c->connect(socketPath(), host() + ":" + std::to_string(2000 + i), {},
                           i % 2 ? protocol::Transport::Shm : protocol::Transport::Socket));
    ASSERT_TRUE(c->reserve());
    clients.push_back(std::move(c));
  }
  ASSERT_TRUE(waitStats(statIs("workers_waiting", kClients)));
  const std::string before = stats();
  std::vector<NewJob> jobs(kClients, job("hostq.noop"));
  std::set<JobId> ids;
  for (auto& e : store->enqueueMany(jobs)) ids.insert(e.id);
  std::set<JobId> got;
  std::vector<JobId> byClient;
  for (auto& c : clients) {
    auto j = c->waitJob(10s);
    ASSERT_TRUE(j.has_value()) << c->name() << " got no job";
    EXPECT_EQ(j->locked_by, c->name()) << "the worker is told it holds the job";
    got.insert(j->id);
    byClient.push_back(j->id);
  }
  EXPECT_EQ(got, ids);
  const std::string after = stats();
  auto delta = [&](const char* k) { return *statNumber(after, k) - *statNumber(before, k); };
  EXPECT_EQ(delta("reservations") - delta("empty_reservations"), 1)
      << "one claim for all waiting workers\nbefore " << before << "\nafter " << after;
  // The claim is the open transaction's row lock: nothing in the rows says so.
  EXPECT_EQ(count("locked_by IS NOT NULL"), 0);
  EXPECT_EQ(count("locked_at IS NOT NULL"), 0);
  // Results are held until the batch closes; when all its jobs have results, it closes at once.
  for (std::size_t k = 0; k < clients.size(); ++k) ASSERT_TRUE(clients[k]->complete(byClient[k]));
  for (std::size_t k = 0; k < clients.size(); ++k) EXPECT_TRUE(clients[k]->waitAck(byClient[k], 10s)) << byClient[k];
  for (JobId id : got) EXPECT_FALSE(exists(id));
  // Every batch opened so far is closed (none needed its bound), and none promoted a job.
  EXPECT_TRUE(waitStats([](const std::string& st) {
    return statNumber(st, "held_batches.closed") == statNumber(st, "held_batches.opened") &&
           statNumber(st, "held_batches.in_use") == 0;
  })) << stats();
  EXPECT_EQ(stat("held_batches.promotions"), 0);
}

TEST_F(ServerHeld, AJobRunningPastTheBoundIsPromotedToAWrittenLockAndListedAsRunning) {
  auto server = startServer({"--batch-max-open", "150ms"});
  TestClient c;
  ASSERT_TRUE(c.connect(socketPath(), host() + ":31", {}, protocol::Transport::Shm));
  ASSERT_TRUE(c.reserve());
  ASSERT_TRUE(waitStats(statIs("workers_waiting", 1)));
  const JobId id = put(job("hostq.noop"));
  auto j = c.waitJob(10s);
  ASSERT_TRUE(j);
  ASSERT_EQ(j->id, id);
  // The client holds the job (it is "running"): past the bound its lock is written.
  ASSERT_TRUE(waitUntil([&] { return count("id = " + std::to_string(id) + " AND locked_by = '" + c.name() + "'") == 1; }, 10s))
      << stats();
  // The database shows the promotion as soon as it commits; the server counts it when it reads
  // the outcome.
  EXPECT_TRUE(waitStats(statAtLeast("held_batches.promotions", 1))) << stats();
  bool listed = false;
  for (const auto& r : store->list(ListFlavor::Running, "")) listed |= r.id == id && r.locked_by == c.name();
  EXPECT_TRUE(listed) << "`hostq jobs` must show a job running longer than the bound";
  // From then on it is an ordinary lock: the result goes through the written-lock CAS.
  const double completes_before = stat("db_statements_by_kind.complete");
  ASSERT_TRUE(c.complete(id));
  ASSERT_TRUE(c.waitAck(id, 10s));
  EXPECT_FALSE(exists(id));
  EXPECT_EQ(stat("db_statements_by_kind.complete"), completes_before + 1);
  EXPECT_EQ(stat("result_mismatches"), 0);
}

TEST_F(ServerHeld, AFailureInAnOpenBatchIsRescheduledOrMovedLikeAnyOther) {
  auto server = startServer();
  TestClient c;
  ASSERT_TRUE(c.connect(socketPath(), host() + ":32", {}, protocol::Transport::Shm));
  auto retried = job("hostq.noop");
  retried.max_attempts = 3;
  const JobId a = put(retried);
  const JobId b = put(job("hostq.noop"));  // max_attempts 1: straight to failed_jobs
  for (JobId expect : {a, b}) {
    ASSERT_TRUE(c.reserve());
    auto j = c.waitJob(10s);
    ASSERT_TRUE(j);
    ASSERT_EQ(j->id, expect);
    ASSERT_TRUE(c.fail(j->id, "boom " + std::to_string(expect)));
    ASSERT_TRUE(c.waitAck(j->id, 10s));
  }
  EXPECT_EQ(queryInt("SELECT attempts FROM delayed_jobs WHERE id = " + std::to_string(a)), 1);
  EXPECT_EQ(query("SELECT last_error FROM delayed_jobs WHERE id = " + std::to_string(a)), "boom " + std::to_string(a));
  EXPECT_EQ(count("id = " + std::to_string(a) + " AND locked_by IS NULL AND run_at > now() AT TIME ZONE 'UTC'"), 1);
  EXPECT_FALSE(exists(b));
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs WHERE original_job_id = " + std::to_string(b)), 1);
}

TEST_F(ServerHeld, SingletonsTakeTheWrittenLockAndNeverRunTwiceAtOnce) {
  auto server = startServer();
  TestClient c1, c2;
  ASSERT_TRUE(c1.connect(socketPath(), host() + ":41", {}, protocol::Transport::Shm));
  ASSERT_TRUE(c2.connect(socketPath(), host() + ":42", {}, protocol::Transport::Shm));
  auto s = job("hostq.noop");
  s.singleton = "nightly";
  const JobId first = put(s);
  ASSERT_TRUE(c1.reserve());
  auto j = c1.waitJob(10s);
  ASSERT_TRUE(j);
  ASSERT_EQ(j->id, first);
  // Its lock is written (the singleton indexes are keyed on it), under the worker's name once the
  // transfer from the prefetch owner is written.
  EXPECT_TRUE(waitUntil([&] { return count("id = " + std::to_string(first) + " AND locked_by = '" + c1.name() + "'") == 1; }, 10s));
  // A second run of the same singleton can be queued, but not run while the first runs.
  const JobId second = put(s);
  ASSERT_NE(second, first);
  ASSERT_TRUE(c2.reserve());
  EXPECT_FALSE(c2.waitJob(1500ms)) << "a singleton ran twice at once";
  ASSERT_TRUE(c1.complete(first));
  ASSERT_TRUE(c1.waitAck(first, 10s));
  auto j2 = c2.waitJob(10s);
  ASSERT_TRUE(j2);
  EXPECT_EQ(j2->id, second);
  EXPECT_GE(stat("db_statements_by_kind.reserve"), 1) << "singletons use the written-lock claim";
}

// Claims start past the rows the server's open batches hold (docs/server.md); one in every few
// starts from the head of the queue, so a job of higher priority enqueued during a burn-down is
// claimed within a few claims, long before the burn-down ends.
TEST_F(ServerHeld, AHigherPriorityJobEnqueuedMidBurnDownIsNotLeftForTheEnd) {
  auto server = startServer();
  store->enqueueMany(std::vector<NewJob>(40000, job("hostq.noop")));
  std::vector<HostqProcess> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(startWorker());
  ASSERT_TRUE(waitUntil([&] { return count("true") <= 30000; }, 60s, kCostlyPoll)) << stats();
  NewJob urgent = job("hostq.noop");
  urgent.priority = 0;
  const JobId id = put(urgent);
  ASSERT_TRUE(waitUntil([&] { return !exists(id); }, 60s, kCostlyPoll)) << stats();
  EXPECT_GT(count("true"), 2000) << "the urgent job waited for the burn-down to end";
  ASSERT_TRUE(waitUntil([&] { return count("true") == 0; }, 60s, kCostlyPoll)) << stats();
}

// held_max_hosts (default 4): with more hosts live on the database (heartbeats), a server makes
// written-lock claims, since every other host's claim would walk and skip its held rows; with
// fewer again, held-lock claims. The count follows hostq_hosts within about a second.
TEST_F(ServerHeld, ClaimsAreWrittenLocksWhileMoreHostsThanHeldMaxHostsAreLive) {
  auto server = startServer();
  auto w = startWorker();  // a group exists: the claim mode is decided on every pass
  auto mode = [](bool held, double live_at_least) {
    return [=](const std::string& s) {
      return statFlag(s, "held_batches/claims_now") == held &&
             statNumber(s, "held_batches/live_hosts").value_or(0) >= live_at_least;
    };
  };
  ASSERT_TRUE(waitStats(mode(true, 1))) << stats();
  sql("INSERT INTO hostq_hosts (hostname, pid, heartbeat_at, host_timeout_ms) "
      "SELECT 'other-' || g, 1, now() AT TIME ZONE 'UTC', 600000 FROM generate_series(1, 4) g");
  ASSERT_TRUE(waitStats(mode(false, 5))) << stats();
  const double opened = stat("held_batches/opened");
  const double reservations = stat("reservations");
  store->enqueueMany(std::vector<NewJob>(200, job("hostq.noop")));
  ASSERT_TRUE(waitUntil([&] { return count("true") == 0; }, 30s, kCostlyPoll)) << stats();
  EXPECT_EQ(stat("held_batches/opened"), opened) << "a held-lock batch was opened with 5 hosts live";
  EXPECT_GT(stat("reservations"), reservations);

  sql("DELETE FROM hostq_hosts WHERE hostname LIKE 'other-%'");
  ASSERT_TRUE(waitStats(mode(true, 1))) << stats();
  store->enqueueMany(std::vector<NewJob>(200, job("hostq.noop")));
  ASSERT_TRUE(waitUntil([&] { return count("true") == 0; }, 30s, kCostlyPoll)) << stats();
  EXPECT_GT(stat("held_batches/opened"), opened);
}

TEST_F(ServerHeld, AStrandRunsOneAtATimeInIdOrder) {
  auto server = startServer();
  const std::string file = dir() + "/strand.txt";
  std::vector<NewJob> jobs;
  for (int i = 0; i < 30; ++i) {
    auto j = job("hostq.append");
    j.payload = file;
    j.strand = "one-by-one";
    jobs.push_back(j);
  }
  std::vector<JobId> ids;
  for (auto& e : store->enqueueMany(jobs)) ids.push_back(e.id);
  auto w1 = startWorker();
  auto w2 = startWorker();
  ASSERT_TRUE(waitUntil([&] { return count("true") == 0; }, 30s)) << stats();
  // Each line is written by the running job; in id order means no two ran out of order, and the
  // strand's next job became runnable only when the previous one's batch committed.
  std::vector<JobId> order;
  for (auto& [id, workers] : appendLog(file)) {
    EXPECT_EQ(workers.size(), 1u) << id;
    order.push_back(id);
  }
  EXPECT_EQ(order, ids);
}

}  // namespace
}  // namespace hostq::test
