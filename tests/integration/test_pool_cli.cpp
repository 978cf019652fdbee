// `hostq pool` as an operator runs it: real processes, kill -9, signals, `hostq stats --json`,
// `hostq wait-idle`, against the test database (each case in its own schema and socket).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "support/db_fixture.hpp"
#include "support/farm.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using hostq::test::Proc;
using hostq::test::RunResult;
using hostq::test::ScratchDir;
using hostq::test::waitUntil;

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

/// The pids in the "workers" array of `hostq stats --json`.
std::vector<int> workerPids(const std::string& json) {
  std::vector<int> pids;
  const auto start = json.find("\"workers\":[");
  if (start == std::string::npos) return pids;
  const auto end = json.find(']', start);
  const std::string list = json.substr(start, end - start);
  static const std::regex pid("\"pid\":(\\d+)");
  for (std::sregex_iterator it(list.begin(), list.end(), pid), e; it != e; ++it) pids.push_back(std::stoi((*it)[1]));
  return pids;
}

class PoolCli : public hostq::test::DbTest {
 protected:
  bool migrateOnSetUp() const override { return false; }

  void SetUp() override {
    DbTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const auto r = hostq({"migrate"});
    ASSERT_EQ(r.code, 0) << describe(r);
  }

  void TearDown() override {
    if (m_pool.pid() > 0 && m_pool.running()) {
      // A failed test: stop the tree fast (the pool takes its children along).
      m_pool.signal(SIGTERM);
      if (!m_pool.wait(15s)) ADD_FAILURE() << "pool ignored TERM\n" << m_pool.describe();
    }
    DbTest::TearDown();
  }

  std::vector<std::string> common() const {
    return {"--database-url", url(), "--schema", schema(), "--socket", m_dir.file("s.sock")};
  }
  RunResult hostq(std::vector<std::string> args, std::chrono::milliseconds timeout = 60s) const {
    const auto c = common();
    args.insert(args.end(), c.begin(), c.end());
    return hostq::test::runHostq(m_dir, args, timeout);
  }
  void startPool(std::vector<std::string> args) {
    std::vector<std::string> argv{hostq::test::hostqBinary(), "pool"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto c = common();
    argv.insert(argv.end(), c.begin(), c.end());
    m_pool = Proc::exec(m_dir, "pool", argv);
  }
  std::vector<int> statsWorkers() const {
    const auto r = hostq({"stats", "--json", "--timeout", "2"}, 10s);
    return r.code == 0 ? workerPids(r.out) : std::vector<int>{};
  }
  /// Stops the pool with QUIT and expects a clean exit.
  void quitPool(std::chrono::milliseconds timeout = 20s) {
    m_pool.signal(SIGQUIT);
    const auto code = m_pool.wait(timeout);
    ASSERT_TRUE(code.has_value()) << "pool did not exit after QUIT\n" << m_pool.describe();
    EXPECT_EQ(*code, 0) << m_pool.describe();
  }
  std::int64_t lockedJobs() const { return queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by IS NOT NULL"); }

  ScratchDir m_dir;
  Proc m_pool;
};

TEST_F(PoolCli, RestartsAWorkerKilledWithKill9AndReschedulesItsJob) {
  auto r = hostq({"enqueue", "hostq.sleep", "20000", "--max-attempts", "3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const hostq::JobId sleeper = std::stoll(r.out);
  startPool({"--workers", "2", "--builtin-handlers", "--restart-grace", "0"});  // fresh schema: no stale locks
  std::string owner;
  ASSERT_TRUE(waitUntil([&] {
    owner = query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(sleeper));
    return owner.find(':') != std::string::npos && owner.rfind("prefetch:", 0) != 0;
  }, 20s)) << owner << "\n" << m_pool.describe();
  const int victim = std::stoi(owner.substr(owner.rfind(':') + 1));
  ASSERT_TRUE(waitUntil([&] {
    auto pids = statsWorkers();
    return std::count(pids.begin(), pids.end(), victim) == 1;
  }, 10s));
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
  r = hostq({"enqueue", "hostq.noop", "--count", "200"});
  ASSERT_EQ(r.code, 0) << describe(r);
  r = hostq({"wait-idle", "--timeout", "30"}, 40s);
  ASSERT_EQ(r.code, 0) << describe(r) << m_pool.describe();
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
  quitPool();
}

TEST_F(PoolCli, DirectWorkersKilledWithKill9AreRecoveredByThePool) {
  // No server to see the socket close: the pool itself reschedules the dead worker's job.
  auto r = hostq({"enqueue", "hostq.sleep", "20000", "--max-attempts", "3"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const hostq::JobId sleeper = std::stoll(r.out);
  startPool({"--workers", "1", "--transport", "direct", "--builtin-handlers", "--restart-grace", "0"});
  std::string owner;
  ASSERT_TRUE(waitUntil([&] {
    owner = query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(sleeper));
    return owner.find(':') != std::string::npos;
  }, 20s)) << owner << "\n" << m_pool.describe();
  const int victim = std::stoi(owner.substr(owner.rfind(':') + 1));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(waitUntil([&] {
    return query("SELECT attempts || ' ' || coalesce(locked_by, '-') FROM delayed_jobs WHERE id = " +
                 std::to_string(sleeper)) == "1 -";
  }, 15s)) << m_pool.describe();
  EXPECT_EQ(query("SELECT last_error FROM delayed_jobs WHERE id = " + std::to_string(sleeper)).rfind("process died", 0), 0u);
  // The replacement takes new work.
  r = hostq({"enqueue", "hostq.noop"});
  ASSERT_EQ(r.code, 0) << describe(r);
  const hostq::JobId next = std::stoll(r.out);
  ASSERT_TRUE(waitUntil([&] { return !exists(next); }, 15s)) << m_pool.describe();
  quitPool();
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
  startPool({"--workers", "2", "--builtin-handlers", "--restart-grace", "0"});  // fresh schema: no stale locks
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
