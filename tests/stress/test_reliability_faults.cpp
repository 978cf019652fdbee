// Reliability under process and database faults: a farm (`hostq pool` from HOSTQ_BIN) burns down
// jobs while a test kills a worker, kills the server, restarts PostgreSQL or freezes a worker.
// Invariants come from `hostq.append` jobs (one "ID WORKER" line per execution) checked against
// the tables: nothing lost, nothing run twice except a job whose worker was killed mid-job.
// docs/reliability.md describes the guarantees these tests pin down.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "pool/embedded_postgres.hpp"
#include "support/reliability_farm.hpp"
#include "support/server_harness.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

using namespace rel;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string q(const std::string& s) { return "'" + s + "'"; }

class ReliabilityFaults : public FarmTest {};

// 1. kill -9 of a worker mid-job: the server sees the socket EOF and reschedules the job as
// "process died" at once (an attempt counted), the pool starts a replacement, the rest finishes.
TEST_F(ReliabilityFaults, WorkerKilledMidJobIsRescheduledAndReplaced) {
  Farm farm(farmOptions("wk", 4));
  ASSERT_TRUE(farm.start()) << farm.log();
  enqueue("hostq.sleep", "300", 40, {"--max-attempts", "3"});

  // A job that a worker (not the prefetch owner) is running.
  std::string victim_row;
  ASSERT_TRUE(waitUntil(
      [&] {
        victim_row = query("SELECT id || ' ' || locked_by FROM delayed_jobs WHERE locked_by LIKE 'wk:%' "
                           "ORDER BY locked_at LIMIT 1");
        return !victim_row.empty();
      },
      10s));
  const auto sp = victim_row.find(' ');
  const std::string owner = victim_row.substr(sp + 1);
  const pid_t victim = static_cast<pid_t>(std::stol(owner.substr(owner.find(':') + 1)));
  // Begun, not only handed out: the worker sleeps in its handler (a job lasts 300 ms). Which job
  // it runs is read after the kill: a job it reported keeps its written lock until the result
  // writer's statement, a few ms on, while the worker already sleeps in the next one, so the
  // row above need not be the one running.
  ASSERT_TRUE(waitUntil([&] { return sleepingInHandler(victim); }, 10s)) << farm.log();
  const auto before = farm.workerPids();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const auto killed_at = Clock::now();

  // The job it ran rescheduled "process died" (attempt counted, lock gone) within 1 s.
  const std::string died = "locked_by IS NULL AND attempts = 1 AND last_error = 'process died'";
  ASSERT_TRUE(waitUntil([&] { return query("SELECT count(*) FROM delayed_jobs WHERE " + died) == "1"; }, 1s))
      << "after killing " << owner << ": "
      << query("SELECT json_agg(d)::text FROM delayed_jobs d WHERE last_error IS NOT NULL") << "\n" << farm.log();
  const std::string job = query("SELECT id FROM delayed_jobs WHERE " + died);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at);
  std::printf("[reliability] worker %d killed mid-job %s: rescheduled after %lld ms\n", victim, job.c_str(),
              static_cast<long long>(took.count()));
  // Nobody else holds it under the dead name.
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = " + q(owner)), 0);

  // The pool replaces the worker and the burn-down completes, the rescheduled job included
  // (inst-jobs' back-off puts it 6 s ahead).
  ASSERT_TRUE(waitUntil(
      [&] {
        auto now = farm.workerPids();
        return now.size() == before.size() && std::find(now.begin(), now.end(), victim) == now.end();
      },
      10s, kCostlyPoll));
  ASSERT_TRUE(farm.waitWorkers(4, 10s));
  ASSERT_TRUE(waitBurnDown(40s)) << remaining() << " left\n" << farm.log();
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 0);
  EXPECT_NE(farm.log().find("killed by Killed; restarting"), std::string::npos) << farm.log();
}

// 2. kill -9 of the server mid burn-down: the pool restarts it, workers reconnect and resend
// results that were not durable yet, the dead server's prefetched jobs come back when the new
// server's restart grace ends (not after the 15-minute purge), and no job runs twice.
// Written-lock claims, whose prefetch the start-up release must give back; the held-lock twin
// follows.
TEST_F(ReliabilityFaults, ServerKilledBurnDownCompletesWithoutDuplicates) {
  auto o = farmOptions("sk", 4);
  o.restart_grace = "2s";
  o.extra = {"--held-batches", "0"};
  constexpr int kJobs = 6000;
  auto burn = startAppendBurn(o, kJobs);
  ASSERT_TRUE(burn.ok());
  Farm& farm = *burn.farm;
  const std::string& file = burn.file;
  const auto& ids = burn.ids;

  // Mid burn-down, with prefetched rows in the table.
  ASSERT_TRUE(waitUntil([&] { return countLines(file) >= 500; }, 30s, 5ms)) << farm.log();
  const pid_t server = *farm.serverPid();
  ASSERT_TRUE(waitUntil([&] { return queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = 'prefetch:sk'") >= 8; }, 5s))
      << "no prefetched rows to check the start-up release with";
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  const auto killed_at = Clock::now();
  const std::string db_now = query("SELECT now()::text");
  const auto orphaned = queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = 'prefetch:sk' AND locked_at <= " +
                                 q(db_now));
  const std::size_t lines_at_kill = countLines(file);
  // The prefetch can drain between the check and the kill; then the release is not observable
  // in this run (said in the output), and the rest of the test still holds.
  if (orphaned == 0) std::printf("[reliability] no prefetched rows at the kill: start-up release not observed\n");

  const auto next = farm.waitNewServer(server, 15s);
  ASSERT_TRUE(next) << farm.log();
  // The dead server's prefetch goes back after the grace: seconds, not the 15-minute purge.
  ASSERT_TRUE(waitUntil(
      [&] {
        return queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = 'prefetch:sk' AND locked_at <= " +
                        q(db_now)) == 0;
      },
      15s, kCostlyPoll))
      << farm.log();
  const auto released_after = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at);
  EXPECT_TRUE(farm.waitWorkers(4, 10s));
  ASSERT_TRUE(waitBurnDown(90s)) << remaining() << " left\n" << farm.log();
  farm.stop();

  Sql db(url(), schema());
  const auto a = audit(db, ids, readAppendFile(file), {});
  std::printf("[reliability] server %d killed after %zu lines; new server %d; %lld prefetched rows released %lld ms "
              "after the kill; %s\n",
              server, lines_at_kill, *next, static_cast<long long>(orphaned),
              static_cast<long long>(released_after.count()), a.summary().c_str());
  expectEachRanOnce(a, kJobs);
  EXPECT_EQ(a.unknown_lines, 0u) << a.summary();
}

// 3. PostgreSQL restarted (fast shutdown, start) mid burn-down, on a private cluster so parallel
// tests on the shared one are not disturbed: the server reconnects with back-off and re-runs its
// compare-and-set statements; nothing is lost and nothing runs twice.
TEST_F(ReliabilityFaults, DatabaseRestartMidBurnDown) {
  std::unique_ptr<EmbeddedPostgres> pg;
  try {
    pg = EmbeddedPostgres::start();
  } catch (const std::exception& e) {
    HOSTQ_SKIP_OR_FAIL_ON_CI("cannot start a private PostgreSQL: " << e.what());
  }
  const std::string purl = pg->url();
  const std::string pschema = "rel_pgrestart";
  {
    const auto r = runHostq({"migrate", "--database-url", purl, "--schema", pschema});
    ASSERT_EQ(r.code, 0) << r.describe();
  }
  FarmOptions o;
  o.database_url = purl;
  o.schema = pschema;
  o.hostname = "pr";
  o.workers = 4;
  Farm farm(o);
  ASSERT_TRUE(farm.start()) << farm.log();
  const std::string file = farm.dir() + "/append.txt";
  constexpr int kJobs = 6000;
  Sql db(purl, pschema);
  const std::int64_t before = lastJobId(db);
  {
    const auto r = runHostq({"enqueue", "hostq.append", file, "--count", std::to_string(kJobs), "--database-url", purl,
                             "--schema", pschema});
    ASSERT_EQ(r.code, 0) << r.describe();
  }
  std::vector<std::int64_t> ids;
  for (std::int64_t id = before + 1, last = lastJobId(db); id <= last; ++id) ids.push_back(id);
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kJobs));
  ASSERT_TRUE(waitUntil([&] { return countLines(file) >= 500; }, 30s, 5ms)) << farm.log();
  const pid_t server = *farm.serverPid();

  const std::string bin = EmbeddedPostgres::findBinDir();
  const std::string runas = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
  const std::string cmd = runas + bin + "/pg_ctl -D " + pg->dir() + "/data -l " + pg->dir() +
                          "/server.log -m fast -w -t 60 restart >" + pg->dir() + "/restart.log 2>&1";
  const std::size_t lines_before = countLines(file);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::size_t lines_after = countLines(file);
  // More jobs after the restart: a farm fast enough to finish the first ones before PostgreSQL
  // went down must still notice its connections died, reconnect and claim these.
  {
    const std::int64_t restarted_at = lastJobId(db);
    const auto r = runHostq({"enqueue", "hostq.append", file, "--count", "2000", "--database-url", purl,
                             "--schema", pschema});
    ASSERT_EQ(r.code, 0) << r.describe();
    for (std::int64_t id = restarted_at + 1, last = lastJobId(db); id <= last; ++id) ids.push_back(id);
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(kJobs + 2000));
  }

  ASSERT_TRUE(waitUntil([&] { return db.integer("SELECT count(*) FROM delayed_jobs") == 0; }, 90s, 100ms))
      << db.value("SELECT count(*) FROM delayed_jobs") << " left\n" << farm.log();
  auto s = farm.stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(static_cast<pid_t>(statNumber(*s, "server_pid").value_or(0)), server) << "the server must survive";
  const double reconnects = statNumber(*s, "db_reconnects").value_or(0);
  farm.stop();

  const auto a = audit(db, ids, readAppendFile(file), {});
  std::printf("[reliability] PostgreSQL restarted at %zu..%zu lines; server reconnected %g times; %s\n", lines_before,
              lines_after, reconnects, a.summary().c_str());
  EXPECT_GE(reconnects, 1.0);
  expectEachRanOnce(a, kJobs + 2000);
}

// 4. A worker frozen (SIGSTOP) while it holds a job: the farm keeps going around it. The job stays
// locked by that worker as long as the process exists (its socket is open: nothing says it died);
// SIGCONT lets it finish, and it runs once.
TEST_F(ReliabilityFaults, FrozenWorkerKeepsItsJobAndTheRestGoOn) {
  Farm farm(farmOptions("fz", 4));
  ASSERT_TRUE(farm.start()) << farm.log();
  const std::string file = farm.dir() + "/append.txt";
  enqueue("hostq.sleep", "1000", 1);
  const std::string held = query("SELECT id FROM delayed_jobs");
  std::string owner;
  ASSERT_TRUE(waitUntil(
      [&] {
        owner = query("SELECT locked_by FROM delayed_jobs WHERE id = " + held + " AND locked_by LIKE 'fz:%'");
        return !owner.empty();
      },
      10s));
  const pid_t frozen = static_cast<pid_t>(std::stol(owner.substr(owner.find(':') + 1)));
  ASSERT_EQ(::kill(frozen, SIGSTOP), 0);

  constexpr int kJobs = 2000;
  const auto ids = enqueue("hostq.append", file, kJobs);
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kJobs));
  // Everything but the frozen worker's job completes.
  ASSERT_TRUE(waitUntil([&] { return remaining() == 1; }, 60s, 100ms)) << remaining() << " left\n" << farm.log();
  EXPECT_EQ(query("SELECT locked_by || ' ' || attempts FROM delayed_jobs WHERE id = " + held), owner + " 0");
  {
    auto lines = readAppendFile(file);
    for (auto& l : lines) EXPECT_NE(l.worker, owner) << "a stopped worker cannot have run job " << l.id;
  }
  // Still nothing changes for it while it stays frozen (no timeout takes it away).
  std::this_thread::sleep_for(1500ms);  // observing that nothing happens needs a span of time
  EXPECT_EQ(query("SELECT locked_by FROM delayed_jobs WHERE id = " + held), owner);

  ASSERT_EQ(::kill(frozen, SIGCONT), 0);
  ASSERT_TRUE(waitBurnDown(20s)) << farm.log();
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 0);
  EXPECT_TRUE(processAlive(frozen)) << "the thawed worker goes on";
  farm.stop();
  Sql db(url(), schema());
  const auto a = audit(db, ids, readAppendFile(file), {});
  EXPECT_EQ(a.ran_once, static_cast<std::size_t>(kJobs)) << a.summary();
  EXPECT_EQ(a.lost, 0u) << a.summary();
}


// --- held-lock batches (docs/server.md) -------------------------------------------------------

// kill -9 of the server while held-lock batches are open: their transactions roll back, so every
// claimed row is free at once; workers resend their unacknowledged results and the new server
// writes them (a row still free is completed by its result). What can still run twice is bounded
// by the rows the open batches held: at most held_batches x max_batch.
TEST_F(ReliabilityFaults, ServerKilledMidHeldBatchesLosesNothingAndBoundsReruns) {
  auto o = farmOptions("hk", 4);
  o.restart_grace = "2s";
  o.extra = {"--held-batches", "3", "--max-batch", "200"};
  constexpr int kJobs = 6000;
  auto burn = startAppendBurn(o, kJobs);
  ASSERT_TRUE(burn.ok());
  Farm& farm = *burn.farm;
  const std::string& file = burn.file;
  const auto& ids = burn.ids;
  ASSERT_TRUE(waitUntil([&] { return countLines(file) >= 500; }, 30s, 5ms)) << farm.log();
  const pid_t server = *farm.serverPid();
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  const std::size_t lines_at_kill = countLines(file);
  const auto next = farm.waitNewServer(server, 15s);
  ASSERT_TRUE(next) << farm.log();
  EXPECT_TRUE(farm.waitWorkers(4, 10s));
  ASSERT_TRUE(waitBurnDown(90s)) << remaining() << " left\n" << farm.log();
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by IS NOT NULL"), 0);
  farm.stop();

  Sql db(url(), schema());
  const auto a = audit(db, ids, readAppendFile(file), {});
  std::printf("[reliability] server %d killed with held batches open after %zu lines; %s\n", server,
              lines_at_kill, a.summary().c_str());
  EXPECT_EQ(a.lost, 0u) << a.summary();
  EXPECT_EQ(a.ran_once + a.ran_twice_or_more, static_cast<std::size_t>(kJobs)) << a.summary();
  EXPECT_LE(a.ran_twice_or_more, 3u * 200u) << "reruns beyond what the open batches held: " << a.summary();
  EXPECT_EQ(a.in_failed, 0u) << a.summary();
  EXPECT_EQ(a.unknown_lines, 0u) << a.summary();
}

// The farm's batch connections (named after its host, so other tests' farms on the same database
// are left alone) are terminated (pg_terminate_backend) again and again mid burn-down: each
// open batch is lost, its results are written against the freed rows by the result writer, its
// running jobs get a written lock, and a row claimed again meanwhile by another of our batches is
// not handed out twice. One host, so nothing may run twice and nothing may be lost.
TEST_F(ReliabilityFaults, BatchConnectionsTerminatedMidBurnDownLoseNothing) {
  auto o = farmOptions("bt", 4);
  o.extra = {"--held-batches", "3", "--max-batch", "300"};
  constexpr int kJobs = 6000;
  auto burn = startAppendBurn(o, kJobs);
  ASSERT_TRUE(burn.ok());
  Farm& farm = *burn.farm;
  const std::string& file = burn.file;
  const auto& ids = burn.ids;
  std::int64_t terminated = 0;
  for (std::size_t at : {500u, 1500u, 2500u, 3500u}) {
    ASSERT_TRUE(waitUntil([&] { return countLines(file) >= at || remaining() == 0; }, 30s, 2ms)) << farm.log();
    terminated += queryInt(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'hostq server batch bt' AND datname = current_database()");
  }
  ASSERT_TRUE(waitBurnDown(90s)) << remaining() << " left\n" << farm.log();
  auto s = farm.stats();
  ASSERT_TRUE(s);
  const double reconnects = statNumber(*s, "db_reconnects").value_or(0);
  farm.stop();
  Sql db(url(), schema());
  const auto a = audit(db, ids, readAppendFile(file), {});
  std::printf("[reliability] %lld batch connections terminated; %g reconnects; %s\n",
              static_cast<long long>(terminated), reconnects, a.summary().c_str());
  EXPECT_GE(terminated, 1);
  expectEachRanOnce(a, kJobs);
}

// inst-jobs' own workers share the table with hostq: they claim with a written lock and
// FOR UPDATE SKIP LOCKED, so a row a held-lock batch holds (still locked_by NULL) is skipped.
// Here the test process is that worker: it claims, "runs" (one append line, like hostq.append)
// and deletes jobs while a hostq farm burns down the same queue; every job runs exactly once.
TEST_F(ReliabilityFaults, InstJobsWorkersSharingTheTableNeverTakeAJobHostqHolds) {
  auto o = farmOptions("sh", 4);
  // A short bound: batches close while jobs run (promoted) and while rows wait (released).
  o.extra = {"--batch-max-open", "20ms"};
  constexpr int kJobs = 6000;
  auto burn = startAppendBurn(o, kJobs);
  ASSERT_TRUE(burn.ok());
  Farm& farm = *burn.farm;
  const std::string& file = burn.file;
  const auto& ids = burn.ids;
  auto ruby = connectStore();
  std::size_t taken = 0;
  const auto until = Clock::now() + 90s;
  while (remaining() > 0 && Clock::now() < until) {
    ReserveRequest r;
    r.worker_names = {"ruby:1"};
    auto res = ruby->reserve(r);
    if (res.assigned.empty()) continue;
    const Job& j = res.assigned[0].second;
    const std::string line = std::to_string(j.id) + " ruby:1\n";
    const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    ::close(fd);
    ASSERT_EQ(ruby->complete(std::vector<OwnedJob>{{j.id, "ruby:1"}}).applied.size(), 1u);
    ++taken;
  }
  ASSERT_TRUE(waitBurnDown(30s)) << remaining() << " left\n" << farm.log();
  farm.stop();
  Sql db(url(), schema());
  const auto a = audit(db, ids, readAppendFile(file), {});
  std::printf("[reliability] a written-lock claimer beside the farm ran %zu jobs; %s\n", taken, a.summary().c_str());
  EXPECT_GT(taken, 0u) << "the other claimer never got a job: nothing was shared";
  expectEachRanOnce(a, kJobs);
}

}  // namespace
}  // namespace hostq::test
