// Running a farm for real, with real process trees: another host recovers the jobs of a host
// whose whole pool was killed with kill -9; the idle hook; the pool's QUIT -> TERM -> KILL
// escalation; the server exiting when its pool dies.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/log.hpp"
#include "common/proc_stat.hpp"
#include "hostq/pool.hpp"
#include "support/pool_fixture.hpp"
#include "support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using hostq::test::describe;
using hostq::test::Proc;
using hostq::test::waitUntil;
using Clock = std::chrono::steady_clock;

/// Children of `parent`: pid → process name.
std::map<int, std::string> childrenOf(int parent) {
  std::map<int, std::string> out;
  for (const auto& p : hostq::childProcesses(parent)) out[p.pid] = p.comm;
  return out;
}

/// Gone or a zombie nobody reaped yet: either way it runs nothing any more.
bool gone(int pid) {
  const auto s = hostq::readProcStat(pid);
  return !s || s->zombie();
}

int childNamed(int parent, const std::string& comm) {
  for (const auto& p : hostq::childProcesses(parent)) {
    if (p.comm == comm) return p.pid;
  }
  return 0;
}

using PoolFarm = hostq::test::PoolFixture;

TEST_F(PoolFarm, AnotherHostRecoversTheJobsOfAPoolKilledWholesale) {
  constexpr auto kHostTimeout = 3s;
  const std::string appended = m_dir.file("appended");
  // One job the dead host's worker is running (its last attempt), the rest for its prefetch.
  const hostq::JobId sleeper = enqueueOne({"hostq.sleep", "600000", "--priority", "0"});
  auto r = hostq({"enqueue", "hostq.append", appended, "--count", "20", "--priority", "5"});
  ASSERT_EQ(r.code, 0) << describe(r);
  std::vector<hostq::JobId> ids;
  for (std::istringstream in(r.out); !in.eof();) {
    hostq::JobId id = 0;
    if (in >> id) ids.push_back(id);
  }
  ASSERT_EQ(ids.size(), 20u);

  // Written-lock claims, so that the dead host leaves `prefetch:host-a` rows behind as well as
  // its worker's lock (held-lock claims die with the host's connections by themselves).
  Proc a = spawnPool({"--workers", "1", "--builtin-handlers", "--hostname", "host-a", "--host-timeout", "3s",
                      "--restart-grace", "0", "--held-batches", "0"},
                     "pool-a", "a.sock");
  ASSERT_TRUE(waitUntil([&] {
    return query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(sleeper)).rfind("host-a:", 0) == 0 &&
           queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = 'prefetch:host-a'") > 0 &&
           queryInt("SELECT count(*) FROM hostq_hosts WHERE hostname = 'host-a'") == 1;
  }, 20s)) << a.describe();
  const auto prefetched = queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = 'prefetch:host-a'");

  // The whole tree at once: stopped first, so that nothing (the server's shutdown on its parent's
  // death above all) gets to give a job back; then killed.
  auto tree = childrenOf(a.pid());
  ASSERT_GE(tree.size(), 2u);
  tree[a.pid()] = "pool";
  for (const auto& [pid, name] : tree) ::kill(pid, SIGSTOP);
  for (const auto& [pid, name] : tree) ::kill(pid, SIGKILL);
  ASSERT_TRUE(a.wait(10s));
  ASSERT_TRUE(waitUntil([&] {
    for (const auto& [pid, name] : tree) {
      if (!gone(pid)) return false;
    }
    return true;
  }, 10s));
  const auto killedAt = Clock::now();
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by LIKE 'host-a:%' OR locked_by = 'prefetch:host-a'"),
            1 + prefetched);

  startPool({"--workers", "2", "--builtin-handlers", "--hostname", "host-b", "--host-timeout", "3s"});
  ASSERT_TRUE(waitUntil([&] {
    return queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by LIKE 'host-a:%' OR locked_by = 'prefetch:host-a'") == 0;
  }, kHostTimeout + 15s)) << m_pool.describe();
  const auto recoveredIn = Clock::now() - killedAt;
  EXPECT_LT(recoveredIn, kHostTimeout + 5s) << std::chrono::duration_cast<std::chrono::milliseconds>(recoveredIn).count()
                                            << " ms";
  // The running job's attempt counted, and it was its last: failed, saying why.
  EXPECT_FALSE(exists(sleeper));
  EXPECT_EQ(query("SELECT last_error FROM failed_jobs WHERE original_job_id = " + std::to_string(sleeper)),
            query("SELECT last_error FROM failed_jobs WHERE last_error LIKE 'host died: no heartbeat from host-a for %'"));
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 1);
  EXPECT_TRUE(waitUntil([&] {  // marked once its jobs are handled
    return query("SELECT declared_dead_at IS NOT NULL AND reaped_at IS NOT NULL FROM hostq_hosts WHERE hostname = 'host-a'") == "t";
  }, 5s));

  // host-b burns down the rest, each job exactly once.
  r = hostq({"wait-idle", "--timeout", "30"}, 40s);
  ASSERT_EQ(r.code, 0) << describe(r) << m_pool.describe();
  ASSERT_TRUE(waitUntil([&] { return queryInt("SELECT count(*) FROM delayed_jobs") == 0; }, 15s)) << m_pool.describe();
  std::map<hostq::JobId, int> seen;
  std::ifstream in(appended);
  for (std::string line; std::getline(in, line);) ++seen[std::stoll(line)];
  for (auto id : ids) EXPECT_EQ(seen[id], 1) << "job " << id;
  quitPool();
}

TEST_F(PoolFarm, AFrozenHostThatComesBackDoesNotClaimTheJobsItLost) {
  // A job host-a's worker runs for 1 s: host-a freezes (SIGSTOP) meanwhile, host-b declares it
  // dead (after 2 s of silence) and reschedules the job; host-a thaws, and its worker, whose
  // sleep is long over, reports the job done at once.
  const hostq::JobId job = enqueueOne({"hostq.sleep", "1000", "--max-attempts", "5"});
  Proc a = spawnPool({"--workers", "1", "--builtin-handlers", "--hostname", "host-a", "--host-timeout", "2s",
                      "--restart-grace", "0"},
                     "pool-a", "a.sock");
  ASSERT_TRUE(waitUntil([&] {
    return query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(job)).rfind("host-a:", 0) == 0;
  }, 20s)) << a.describe();
  auto tree = childrenOf(a.pid());
  tree[a.pid()] = "pool";
  for (const auto& [pid, name] : tree) ::kill(pid, SIGSTOP);
  // A server writes its first heartbeat before it claims: without a row, host-a would never be
  // reaped (this raced under the sanitizers when the first beat was the monitor thread's).
  ASSERT_EQ(query("SELECT count(*) FROM hostq_hosts WHERE hostname = 'host-a'"), "1");
  // host-b only reaps: its workers take another queue, so the rescheduled job stays visible.
  startPool({"--workers", "1", "--queue", "elsewhere", "--hostname", "host-b", "--host-timeout", "2s"});
  ASSERT_TRUE(waitUntil([&] {
    return query("SELECT attempts || ' ' || coalesce(locked_by, '-') FROM delayed_jobs WHERE id = " + std::to_string(job)) ==
           "1 -";
  }, 15s)) << m_pool.describe();
  for (const auto& [pid, name] : tree) ::kill(pid, SIGCONT);
  // host-a's server learns it was declared dead on its next heartbeat and restarts.
  ASSERT_TRUE(waitUntil([&] { return a.err().find("was declared dead by another server") != std::string::npos; }, 15s))
      << a.describe();
  ASSERT_TRUE(waitUntil([&] { return a.err().find("exited with status 1; restarting") != std::string::npos; }, 15s))
      << a.describe();
  // The thawed worker's "done" (sent before the server restarted) did not delete the job whose
  // retry is not host-a's any more; the retry is due 6 s after the reschedule.
  EXPECT_EQ(query("SELECT attempts || ' ' || coalesce(locked_by, '-') FROM delayed_jobs WHERE id = " + std::to_string(job)),
            "1 -");
  EXPECT_EQ(query("SELECT declared_dead_at IS NULL FROM hostq_hosts WHERE hostname = 'host-a'"), "t");
  a.signal(SIGTERM);
  EXPECT_TRUE(a.wait(20s)) << a.describe();
  quitPool();
}

TEST_F(PoolFarm, APeriodicJobRunsOncePerTickOnTwoHostsWithTheSameConfig) {
  const std::string appended = m_dir.file("ticks");
  const std::string config = m_dir.file("farm.yml");
  std::ofstream(config) << "periodic_jobs:\n"
                           "  - name: tick\n"
                           "    cron: \"* * * * * *\"\n"
                           "    tag: hostq.append\n"
                           "    payload: " << appended << "\n";
  const std::vector<std::string> flags{"--config", config, "--workers", "2", "--builtin-handlers"};
  auto withHost = [&](const char* host) {
    auto f = flags;
    f.insert(f.end(), {"--hostname", host});
    return f;
  };
  Proc a = spawnPool(withHost("host-a"), "pool-a", "a.sock");
  startPool(withHost("host-b"));
  // `hostq jobs --tag` shows the next run: a job of the singleton `periodic: tick`.
  ASSERT_TRUE(waitUntil([&] {
    const auto r = hostq({"jobs", "--tag", "hostq.append"});
    return r.code == 0 && r.out.find("periodic: tick") != std::string::npos;
  }, 20s)) << a.describe() << m_pool.describe();
  auto lines = [&] {
    std::ifstream in(appended);
    std::vector<hostq::JobId> ids;
    for (std::string line; std::getline(in, line);) ids.push_back(std::stoll(line));
    return ids;
  };
  ASSERT_TRUE(waitUntil([&] { return lines().size() >= 1; }, 20s)) << a.describe() << m_pool.describe();
  const auto first = Clock::now();
  ASSERT_TRUE(waitUntil([&] { return lines().size() >= 6; }, 30s)) << a.describe() << m_pool.describe();
  const auto span = Clock::now() - first;
  // One run per second at most, whichever host enqueued or ran it: five more runs need five more
  // ticks (a tick enqueued by both hosts would show up as two runs of one second).
  EXPECT_GE(span, 4s) << std::chrono::duration_cast<std::chrono::milliseconds>(span).count() << " ms";
  EXPECT_LE(queryInt("SELECT count(*) FROM delayed_jobs WHERE singleton = 'periodic: tick' AND locked_by IS NULL"), 1);
  a.signal(SIGQUIT);
  EXPECT_EQ(a.wait(20s), 0) << a.describe();
  quitPool();
  auto ids = lines();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end()) << "a run appended twice";
}

TEST_F(PoolFarm, TheIdleHookRunsOnEveryBusyAndIdleTransition) {
  const std::string marks = m_dir.file("marks");
  startPool({"--workers", "1", "--builtin-handlers", "--idle-hook", "echo \"$HOSTQ_IDLE\" >> " + marks});
  auto lines = [&] { return hostq::test::slurpFile(marks); };
  for (const std::string expected : {"0\n1\n", "0\n1\n0\n1\n"}) {
    ASSERT_NE(enqueueOne({"hostq.sleep", "300"}), 0);
    ASSERT_TRUE(waitUntil([&] { return lines() == expected; }, 15s)) << "marks:\n" << lines() << m_pool.describe();
  }
  quitPool();
}

TEST_F(PoolFarm, QuitEscalatesToTermForAWorkerStillRunningItsJob) {
  const hostq::JobId sleeper = enqueueOne({"hostq.sleep", "600000", "--max-attempts", "3"});
  startPool({"--workers", "1", "--builtin-handlers", "--slow-exit-timeout", "1s", "--restart-grace", "0"});
  ASSERT_FALSE(waitForWorker(sleeper).empty()) << m_pool.describe();
  const auto start = Clock::now();
  m_pool.signal(SIGQUIT);
  const auto code = m_pool.wait(20s);
  ASSERT_TRUE(code) << m_pool.describe();
  EXPECT_EQ(*code, 0) << m_pool.describe();
  // QUIT was not enough (the job runs for 10 minutes); after slow_exit_timeout TERM aborted it.
  EXPECT_GE(Clock::now() - start, 1s);
  EXPECT_NE(m_pool.err().find("workers still running after 1000 ms; sending TERM"), std::string::npos) << m_pool.err();
  EXPECT_EQ(m_pool.err().find("sending KILL"), std::string::npos) << m_pool.err();
  EXPECT_EQ(query("SELECT attempts || ' ' || coalesce(locked_by, '-') FROM delayed_jobs WHERE id = " + std::to_string(sleeper)),
            "1 -");
  EXPECT_NE(query("SELECT last_error FROM delayed_jobs WHERE id = " + std::to_string(sleeper)).find("worker received"),
            std::string::npos);
}

TEST_F(PoolFarm, QuitEscalatesToKillForAWorkerThatIgnoresTerm) {
  ASSERT_NE(enqueueOne({"stubborn"}), 0);
  const std::string ready = m_dir.file("stubborn.pid");
  // A library user's pool whose handler ignores QUIT and TERM: only KILL ends its worker.
  Proc pool = Proc::fork(m_dir, "lib-pool", [&] {
    hostq::log::init("pool");  // as `hostq pool` does: log lines on stderr
    hostq::PoolOptions o;
    o.settings.database_url = url();
    o.settings.server.socket_path = m_dir.file("lib.sock");
    o.settings.slow_exit_timeout = 1s;
    o.settings.workers.emplace_back();
    o.schema = schema();
    o.handlers.add("stubborn", [ready](const hostq::Job&) {
      std::signal(SIGQUIT, SIG_IGN);
      std::signal(SIGTERM, SIG_IGN);
      std::ofstream(ready) << ::getpid() << "\n";
      std::this_thread::sleep_for(600s);
    });
    return hostq::runPool(std::move(o));
  });
  ASSERT_TRUE(waitUntil([&] { return !hostq::test::slurpFile(ready).empty(); }, 20s)) << pool.describe();
  const int worker = std::stoi(hostq::test::slurpFile(ready));
  const auto start = Clock::now();
  pool.signal(SIGQUIT);
  const auto code = pool.wait(30s);
  ASSERT_TRUE(code) << pool.describe();
  // slow_exit_timeout (1 s) of QUIT, then 2 s of TERM, then KILL.
  EXPECT_GE(Clock::now() - start, 3s) << pool.describe();
  EXPECT_NE(pool.err().find("sending TERM"), std::string::npos) << pool.err();
  EXPECT_NE(pool.err().find("workers still running; sending KILL"), std::string::npos) << pool.err();
  EXPECT_TRUE(gone(worker));
  EXPECT_EQ(pool.err().find("server still running"), std::string::npos) << pool.err();
}

TEST_F(PoolFarm, TheServerExitsWhenItsPoolDiesAndGivesBackItsPrefetch) {
  ASSERT_NE(enqueueOne({"hostq.sleep", "600000", "--priority", "0"}), 0);
  const auto r = hostq({"enqueue", "hostq.noop", "--count", "10", "--priority", "5", "--quiet"});
  ASSERT_EQ(r.code, 0) << describe(r);
  // Written-lock claims: the prefetch to give back is visible as `prefetch:HOST` rows.
  startPool({"--workers", "1", "--builtin-handlers", "--restart-grace", "0", "--held-batches", "0"});
  int server = 0;
  ASSERT_TRUE(waitUntil([&] {
    server = childNamed(m_pool.pid(), "hostq server");
    return server > 0 && queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by LIKE 'prefetch:%'") > 0;
  }, 20s)) << m_pool.describe();
  const auto workers = childrenOf(m_pool.pid());
  m_pool.signal(SIGKILL);
  ASSERT_TRUE(m_pool.wait(10s));
  ASSERT_TRUE(waitUntil([&] { return gone(server); }, 10s)) << "the server outlived its pool";
  // It shut down as on a signal: the prefetched jobs are back in the queue.
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by LIKE 'prefetch:%'"), 0);
  for (const auto& child : workers) {
    EXPECT_TRUE(waitUntil([&] { return gone(child.first); }, 10s)) << child.second << " " << child.first
                                                                    << " outlived its pool";
  }
}

}  // namespace
