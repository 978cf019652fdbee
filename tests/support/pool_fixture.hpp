#pragma once
// Tests of `hostq pool` as an operator runs it: a migrated schema, a scratch directory with the
// control socket, the hostq binary run against both, and pools started as real process trees. A
// pool still running at the end of a test is stopped with TERM (it takes its children along).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/db_fixture.hpp"
#include "support/farm.hpp"
#include "support/stats_json.hpp"
#include "support/wait.hpp"

namespace hostq::test {

inline std::string describe(const RunResult& r) { return r.describe(); }

class PoolFixture : public DbTest {
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
      if (!m_pool.wait(std::chrono::seconds(15))) ADD_FAILURE() << "pool ignored TERM\n" << m_pool.describe();
    }
    DbTest::TearDown();
  }

  /// Database, schema and the socket `socket` (a file name in the scratch directory).
  std::vector<std::string> common(const std::string& socket = "s.sock") const {
    return {"--database-url", url(), "--schema", schema(), "--socket", m_dir.file(socket)};
  }
  RunResult hostq(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    const auto c = common();
    args.insert(args.end(), c.begin(), c.end());
    RunOptions o;
    o.timeout = timeout;
    return runHostq(args, o);
  }
  /// `hostq pool ARGS` on its own socket, output in LABEL.out/.err.
  Proc spawnPool(std::vector<std::string> args, const std::string& label, const std::string& socket) const {
    std::vector<std::string> argv{hostqBinary(), "pool"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto c = common(socket);
    argv.insert(argv.end(), c.begin(), c.end());
    return Proc::exec(m_dir, label, argv);
  }
  void startPool(std::vector<std::string> args) { m_pool = spawnPool(std::move(args), "pool", "s.sock"); }
  std::vector<pid_t> statsWorkers() const {
    const auto r = hostq({"stats", "--json", "--timeout", "2"}, std::chrono::seconds(10));
    return r.code == 0 ? statsWorkerPids(r.out) : std::vector<pid_t>{};
  }
  /// Stops the pool with QUIT and expects a clean exit.
  void quitPool(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    m_pool.signal(SIGQUIT);
    const auto code = m_pool.wait(timeout);
    ASSERT_TRUE(code.has_value()) << "pool did not exit after QUIT\n" << m_pool.describe();
    EXPECT_EQ(*code, 0) << m_pool.describe();
  }
  /// `hostq enqueue ARGS` of one job; returns its id (0, with a test failure, if it failed).
  JobId enqueueOne(std::vector<std::string> args) const {
    args.insert(args.begin(), "enqueue");
    const auto r = hostq(args);
    EXPECT_EQ(r.code, 0) << describe(r);
    return r.code == 0 ? std::stoll(r.out) : 0;
  }
  /// Waits until a worker (`HOST:PID`, not a prefetch) holds job `id`; returns its locked_by, or
  /// "" on timeout.
  std::string waitForWorker(JobId id, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const {
    std::string owner;
    const bool held = waitUntil([&] {
      owner = query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(id));
      return owner.find(':') != std::string::npos && owner.rfind("prefetch:", 0) != 0;
    }, timeout);
    return held ? owner : std::string();
  }
  std::int64_t lockedJobs() const { return queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by IS NOT NULL"); }

  ScratchDir m_dir;
  Proc m_pool;
};

}  // namespace hostq::test
