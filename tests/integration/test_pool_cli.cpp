// `hostq pool` as an operator runs it: real processes, kill -9, signals, `hostq stats --json`,
// `hostq wait-idle`, against the test database (each case in its own schema and socket).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cerrno>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "support/pool_fixture.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using hostq::test::describe;
using hostq::test::Proc;
using hostq::test::RunResult;
using hostq::test::ScratchDir;
using hostq::test::waitUntil;

using PoolCli = hostq::test::PoolFixture;

TEST_F(PoolCli, RestartsAWorkerKilledWithKill9AndReschedulesItsJob) {
  const hostq::JobId sleeper = enqueueOne({"hostq.sleep", "20000", "--max-attempts", "3"});
  startPool({"--workers", "2", "--builtin-handlers", "--restart-grace", "0"});  // fresh schema: no stale locks
  const std::string owner = waitForWorker(sleeper);
  ASSERT_FALSE(owner.empty()) << m_pool.describe();
  const int victim = std::stoi(owner.substr(owner.rfind(':') + 1));
  ASSERT_TRUE(waitUntil([&] {
    auto pids = statsWorkers();
    return std::count(pids.begin(), pids.end(), victim) == 1;
  }, 10s));
  ASSERT_TRUE(waitUntil([&] { return hostq::test::sleepingInHandler(victim); }, 10s)) << "the job never began";
  ASSERT_EQ(::kill(victim, SIGKILL), 0);

  ASSERT_TRUE(waitUntil([&] {
    return query("SELECT attempts || ' ' || coalesce(locked_by, '-') FROM delayed_jobs WHERE id = " +
                 std::to_string(sleeper)) == "1 -";
  }, 15s)) << m_pool.describe();
  EXPECT_EQ(query("SELECT last_error FROM delayed_jobs WHERE id = " + std::to_string(sleeper)).rfind("process died", 0), 0u);
  // A replacement: two workers again, the dead one not among them.
  std::vector<int> pids;
  ASSERT_TRUE(waitUntil([&] {
    pids = statsWorkers();
    return pids.size() == 2 && std::count(pids.begin(), pids.end(), victim) == 0;
  }, 15s)) << m_pool.describe();
  EXPECT_TRUE(m_pool.running());

  // The burn-down completes: the rescheduled job (shortened, due now) and a batch of new ones.
  sql("UPDATE delayed_jobs SET handler = '10', run_at = now() AT TIME ZONE 'UTC' WHERE id = " + std::to_string(sleeper));
  auto r = hostq({"enqueue", "hostq.noop", "--count", "200"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = hostq({"wait-idle", "--timeout", "30"}, 40s);
  ASSERT_EQ(r.code, 0) << describe(r) << m_pool.describe();
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
  quitPool();
}

TEST_F(PoolCli, DirectWorkersKilledWithKill9AreRecoveredByThePool) {
  // No server to see the socket close: the pool itself reschedules the dead worker's job.
  const hostq::JobId sleeper = enqueueOne({"hostq.sleep", "20000", "--max-attempts", "3"});
  startPool({"--workers", "1", "--transport", "direct", "--builtin-handlers", "--restart-grace", "0"});
  const std::string owner = waitForWorker(sleeper);
  ASSERT_FALSE(owner.empty()) << m_pool.describe();
  const int victim = std::stoi(owner.substr(owner.rfind(':') + 1));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(waitUntil([&] {
    return query("SELECT attempts || ' ' || coalesce(locked_by, '-') FROM delayed_jobs WHERE id = " +
                 std::to_string(sleeper)) == "1 -";
  }, 15s)) << m_pool.describe();
  EXPECT_EQ(query("SELECT last_error FROM delayed_jobs WHERE id = " + std::to_string(sleeper)).rfind("process died", 0), 0u);
  // The replacement takes new work.
  const hostq::JobId next = enqueueOne({"hostq.noop"});
  ASSERT_TRUE(waitUntil([&] { return !exists(next); }, 15s)) << m_pool.describe();
  quitPool();
}

// Workers run below their server: nice +5 by default (the server keeps the CPU first on a
// contended host), `--worker-nice N` to choose, 0 for none. The server stays at the pool's.
TEST_F(PoolCli, WorkersRunNicerThanTheirServer) {
  errno = 0;
  const int base = ::getpriority(PRIO_PROCESS, 0);  // the pool inherits ours
  ASSERT_EQ(errno, 0);
  for (const auto& [flags, add] : std::vector<std::pair<std::vector<std::string>, int>>{
           {{}, 5}, {{"--worker-nice", "2"}, 2}, {{"--worker-nice", "0"}, 0}}) {
    std::vector<std::string> args{"--workers", "2"};
    args.insert(args.end(), flags.begin(), flags.end());
    startPool(args);
    std::vector<pid_t> workers;
    ASSERT_TRUE(waitUntil([&] { return (workers = statsWorkers()).size() == 2; }, 20s)) << m_pool.describe();
    for (pid_t w : workers) {
      errno = 0;
      EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(w)), std::min(19, base + add)) << "worker " << w;
    }
    const auto stats = hostq({"stats", "--json", "--timeout", "2"}, 10s);
    const auto server = hostq::test::statNumber(stats.out, "server_pid");
    ASSERT_TRUE(server) << describe(stats);
    errno = 0;
    EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(*server)), base) << "the server";
    quitPool();
  }
}

TEST_F(PoolCli, ConfigErrorsExitNonZeroNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"server:\n  fetch_batchsize: 5\n", "server.fetch_batchsize: unknown setting"},
      {"server:\n  flush_delay: soon\n", "server.flush_delay: must be a duration"},
      {"workers:\n  - queue: q\n    min_priority: 9\n    max_priority: 2\n", "min_priority 9 is greater than max_priority 2"},
      {"workers:\n  - transport: carrier-pigeon\n", "workers[0].transport"},
      {"workers:\n  - queue: q\n  - queue: r\n    workers: 0\n", "workers[1].workers: must be at least 1"},
      // (an unknown key in a worker entry is an extra, part of the grouping key: not an error)
      {"workers:\n  - queue: q\n    region: [a, b]\n", "workers[0].region"},
      {"workers: [\n", "invalid YAML"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string file = m_dir.file("bad" + std::to_string(i) + ".yml");
    std::ofstream(file) << cases[i].first;
    const auto r = hostq({"pool", "--config", file}, 15s);
    EXPECT_EQ(r.code, 1) << cases[i].first << describe(r);  // -1: still running after 15 s
    EXPECT_NE(r.err.find(cases[i].second), std::string::npos) << cases[i].first << describe(r);
    EXPECT_EQ(r.err.rfind("hostq pool: " + file + ":", 0), 0u) << "names the file\n" << describe(r);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line\n" << describe(r);
  }
}

TEST_F(PoolCli, QuitShutsDownGracefullyAndLeavesNothingLocked) {
  auto r = hostq({"enqueue", "hostq.sleep", "1500", "--count", "2", "--priority", "0"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = hostq({"enqueue", "hostq.sleep", "1500", "--count", "20", "--priority", "20"});  // the backlog
  ASSERT_EQ(r.code, 0) << describe(r);
  // Written-lock claims, so that the prefetch is visible as `prefetch:HOST` rows.
  startPool({"--workers", "2", "--builtin-handlers", "--restart-grace", "0", "--held-batches", "0"});
  ASSERT_TRUE(waitUntil([&] {
    return queryInt("SELECT count(*) FROM delayed_jobs WHERE priority = 0 AND locked_by NOT LIKE 'prefetch:%'") == 2;
  }, 20s)) << m_pool.describe();
  // The server reserves ahead of its workers: part of the backlog is locked `prefetch:HOST`.
  ASSERT_TRUE(waitUntil([&] { return queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by LIKE 'prefetch:%'") > 0; }, 10s));
  quitPool();
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE priority = 0"), 0) << "the running jobs finished";
  EXPECT_EQ(lockedJobs(), 0) << "prefetched jobs given back";
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE priority = 20 AND attempts = 0"), 20) << "the backlog untouched";
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 0);
}

TEST_F(PoolCli, EndToEndTenThousandAppendsEachExactlyOnce) {
  const std::string out = m_dir.file("appended");
  auto r = hostq({"enqueue", "hostq.append", out, "--count", "10000"});
  ASSERT_EQ(r.code, 0) << describe(r);
  std::set<hostq::JobId> ids;
  {
    std::istringstream in(r.out);  // one id per line
    for (hostq::JobId id; in >> id;) ids.insert(id);
    ASSERT_EQ(ids.size(), 10000u) << r.out.substr(0, 200);
    ASSERT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 10000);
  }
  ASSERT_EQ(ids.size(), 10000u);
  startPool({"--workers", "4", "--builtin-handlers"});
  r = hostq({"wait-idle", "--timeout", "90"}, 100s);
  ASSERT_EQ(r.code, 0) << describe(r) << m_pool.describe();
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
  quitPool();

  std::map<hostq::JobId, int> seen;
  std::set<std::string> workers;
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream l(line);
    hostq::JobId id = 0;
    std::string worker;
    ASSERT_TRUE(l >> id >> worker) << line;
    ++seen[id];
    workers.insert(worker);
  }
  std::size_t dup = 0, missing = 0;
  for (auto& [id, n] : seen) dup += n != 1;
  for (auto id : ids) missing += !seen.count(id);
  EXPECT_EQ(seen.size(), ids.size());
  EXPECT_EQ(dup, 0u) << "ids appended more than once";
  EXPECT_EQ(missing, 0u) << "ids never appended";
  EXPECT_GE(workers.size(), 2u) << "the work was spread over the pool";
}

}  // namespace
