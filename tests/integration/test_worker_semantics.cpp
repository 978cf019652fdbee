// Worker semantics (inst-jobs §7.8 in hostq's terms): a forked process runs hostq::Worker with
// handlers and hooks registered here, against the real database, both with its own connection
// (direct) and through a `hostq server` (shm and socket). What the child's handlers and hooks see is
// appended to an event file; what the database holds afterwards is read back with SQL.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <ostream>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <sstream>
#include <thread>

#include "hostq/worker.hpp"
#include "support/db_fixture.hpp"
#include "support/farm.hpp"
#include "support/wait.hpp"

namespace hostq {
// Test names in ctest read "…/shm" rather than "GetParam() = 4-byte object <00-00 00-00>".
void PrintTo(Transport t, std::ostream* os) { *os << toString(t); }
}  // namespace hostq

namespace {

using namespace std::chrono_literals;
using hostq::FailureAction;
using hostq::HandlerOptions;
using hostq::Job;
using hostq::JobId;
using hostq::Outcome;
using hostq::Transport;
using hostq::test::Proc;
using hostq::test::ScratchDir;
using hostq::test::waitUntil;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

class WorkerSemantics : public hostq::test::DbTest, public ::testing::WithParamInterface<Transport> {
 protected:
  void TearDown() override {
    m_workers.clear();  // kills leftovers before the server and the schema go
    if (m_server.pid() > 0) {
      m_server.signal(SIGTERM);
      m_server.wait(10s);
    }
    DbTest::TearDown();
  }

  /// Appends one line to the event file; called in the worker process (one write: O_APPEND).
  void note(const std::string& text) const {
    const int fd = ::open(m_dir.file("events").c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
    const std::string line = text + "\n";
    [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
    ::close(fd);
  }
  std::vector<std::string> events() const { return lines(hostq::test::slurpFile(m_dir.file("events"))); }
  bool sawEvent(const std::string& e) const {
    const auto v = events();
    return std::find(v.begin(), v.end(), e) != v.end();
  }

  hostq::WorkerOptions options() const {
    hostq::WorkerOptions o;
    o.settings.transport = GetParam();
    o.socket_path = m_dir.file("s.sock");
    o.database_url = url();
    o.schema = schema();
    return o;
  }

  /// Forks a worker; for shm, starts the server first with the worker's failure settings (the
  /// server writes the results there).
  Proc& startWorker(hostq::WorkerOptions o) {
    if (GetParam() != Transport::Direct && m_server.pid() < 0) {
      std::vector<std::string> args{hostq::test::hostqBinary(), "server", "--socket", o.socket_path,
                                    "--database-url", url(), "--schema", schema(), "--max-attempts",
                                    std::to_string(o.default_max_attempts),
                                    // A fresh schema holds no locks of a previous server.
                                    "--restart-grace", "0"};
      if (!o.keep_failed_jobs) args.push_back("--delete-failed-jobs");
      m_server = Proc::exec(m_dir, "server", args);
      const std::string sock = o.socket_path;
      EXPECT_TRUE(waitUntil([&] { return std::filesystem::exists(sock) || !m_server.running(); }, 15s))
          << m_server.describe();
    }
    const std::string label = "worker" + std::to_string(m_workers.size());
    m_workers.push_back(Proc::fork(m_dir, label, [o = std::move(o)]() mutable {
      hostq::Worker w(std::move(o));
      return w.run();
    }));
    return m_workers.back();
  }

  hostq::NewJob job(const std::string& tag, const std::string& payload = "", int maxAttempts = 1) const {
    hostq::NewJob j;
    j.tag = tag;
    j.payload = payload;
    j.max_attempts = maxAttempts;
    return j;
  }
  std::string col(JobId id, const std::string& column) const {
    return query("SELECT " + column + " FROM delayed_jobs WHERE id = " + std::to_string(id));
  }
  std::string failedCol(JobId id, const std::string& column) const {
    return query("SELECT " + column + " FROM failed_jobs WHERE original_job_id = " + std::to_string(id));
  }
  bool inFailedJobs(JobId id) const { return failedCol(id, "count(*)") == "1"; }
  /// Seconds from the failure (updated_at: the database's now() of the statement that wrote it)
  /// to run_at.
  double runAtAfterFailure(JobId id) const {
    EXPECT_LT(std::stod(col(id, "EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - updated_at)")), 60.0);
    return std::stod(col(id, "EXTRACT(EPOCH FROM run_at - updated_at)"));
  }
  bool attemptsAre(JobId id, int n) const { return exists(id) && col(id, "attempts") == std::to_string(n) && col(id, "locked_by") == "NULL"; }

  /// Waits for the worker to exit and expects `code`.
  void expectExit(Proc& p, int code, std::chrono::milliseconds timeout = 15s) {
    const auto c = p.wait(timeout);
    ASSERT_TRUE(c.has_value()) << "worker did not exit\n" << p.describe();
    EXPECT_EQ(*c, code) << p.describe();
  }

  ScratchDir m_dir;
  Proc m_server;
  std::deque<Proc> m_workers;  // deque: references stay valid as workers are added
};

std::string transportName(const ::testing::TestParamInfo<Transport>& i) {
  return hostq::toString(i.param);
}

TEST_P(WorkerSemantics, TakesOnlyItsQueueAndPriorityRange) {
  auto o = options();
  o.settings.config.queue = "mail";
  o.settings.config.min_priority = 2;
  o.settings.config.max_priority = 8;
  o.handlers.add("t", [this](const Job& j) { note("ran " + j.payload); });
  auto inRange = [&](const char* name, int prio, const char* queue) {
    auto j = job("t", name);
    j.priority = prio;
    j.queue = queue;
    return put(j);
  };
  const JobId p1 = inRange("p1", 1, "mail"), p2 = inRange("p2", 2, "mail"), p8 = inRange("p8", 8, "mail");
  const JobId p9 = inRange("p9", 9, "mail"), other = inRange("other", 5, "queue");
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return !exists(p2) && !exists(p8); }, 15s)) << w.describe();
  w.signal(SIGQUIT);
  expectExit(w, 0);
  auto ran = events();
  std::sort(ran.begin(), ran.end());
  EXPECT_EQ(ran, (std::vector<std::string>{"ran p2", "ran p8"}));
  for (JobId id : {p1, p9, other}) {
    EXPECT_TRUE(exists(id)) << id;
    EXPECT_EQ(col(id, "attempts"), "0") << id;
    EXPECT_EQ(col(id, "locked_by"), "NULL") << id;
  }
}

TEST_P(WorkerSemantics, AFailureIsRescheduledWithBackoffAndHooks) {
  auto o = options();
  o.handlers.add("resize", [](const Job& j) { return Outcome::failure("bad input: " + j.payload); },
                 HandlerOptions{.on_failure = [this](const Job&, const std::string& e) {
                                  note("on_failure " + e);
                                  return FailureAction::CountAttempt;
                                },
                                .on_permanent_failure = [this](const Job&, const std::string&) { note("permanent"); },
                                .reschedule_at = {}});
  o.hooks.on_error.push_back([this](const Job&, const std::string& e) { note("on_error " + e); });
  o.hooks.on_retry.push_back([this](const Job&, const std::string& e) { note("on_retry " + e); });
  const JobId id = put(job("resize", "-1x0", 3));
  auto& w = startWorker(std::move(o));
  // The retry hook follows the database's decision, which arrives with the result's ack.
  ASSERT_TRUE(waitUntil([&] { return attemptsAre(id, 1) && events().size() >= 3; }, 15s)) << w.describe();
  EXPECT_EQ(col(id, "last_error").rfind("bad input: -1x0", 0), 0u) << col(id, "last_error");
  EXPECT_NEAR(runAtAfterFailure(id), 6.0, 0.001);  // now + 1^4 + 5 s
  EXPECT_EQ(events(), (std::vector<std::string>{"on_failure bad input: -1x0", "on_error bad input: -1x0",
                                                "on_retry bad input: -1x0"}));
  w.signal(SIGQUIT);
  expectExit(w, 0);
}

TEST_P(WorkerSemantics, MaxAttemptsReachedMovesTheJobToFailedJobs) {
  auto o = options();
  o.handlers.add("resize", [](const Job&) { return Outcome::failure("bad input"); },
                 HandlerOptions{.on_failure = {},
                                .on_permanent_failure = [this](const Job& j, const std::string& e) {
                                  note("permanent " + std::to_string(j.id) + " " + e);
                                },
                                .reschedule_at = {}});
  o.hooks.on_retry.push_back([this](const Job& j, const std::string&) { note("retry " + std::to_string(j.id)); });
  const JobId once = put(job("resize", "", 1));
  // The second attempt of two is the last one.
  const JobId twice = put(job("resize", "", 2));
  sql("UPDATE delayed_jobs SET attempts = 1 WHERE id = " + std::to_string(twice));
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return inFailedJobs(once) && inFailedJobs(twice) && events().size() >= 2; }, 15s))
      << w.describe();
  EXPECT_FALSE(exists(once));
  EXPECT_FALSE(exists(twice));
  EXPECT_EQ(failedCol(once, "last_error").rfind("bad input", 0), 0u);
  EXPECT_EQ(failedCol(once, "attempts"), "1");
  EXPECT_EQ(failedCol(twice, "attempts"), "2");
  EXPECT_NE(failedCol(once, "failed_at"), "NULL");
  auto ev = events();
  std::sort(ev.begin(), ev.end());
  std::vector<std::string> want{"permanent " + std::to_string(once) + " bad input",
                                "permanent " + std::to_string(twice) + " bad input"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ev, want);  // no retry
  w.signal(SIGQUIT);
  expectExit(w, 0);
}

TEST_P(WorkerSemantics, DeleteFailedJobsDeletesInsteadOfMoving) {
  auto o = options();
  o.keep_failed_jobs = false;
  o.handlers.add("resize", [](const Job&) { return Outcome::failure("bad input"); });
  const JobId id = put(job("resize", "", 1));
  const JobId after = put(job("resize", "", 1));  // run after the first: its absence means the first is written
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return !exists(id) && !exists(after); }, 15s)) << w.describe();
  w.signal(SIGQUIT);
  expectExit(w, 0);
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 0);
}

TEST_P(WorkerSemantics, OnFailureDontCountLeavesAttemptsAlone) {
  auto o = options();
  o.handlers.add("flaky", [](const Job&) { return Outcome::failure("service unavailable"); },
                 HandlerOptions{.on_failure = [this](const Job&, const std::string&) {
                                  note("on_failure");
                                  return FailureAction::DontCount;
                                },
                                .on_permanent_failure = [this](const Job&, const std::string&) { note("permanent"); },
                                .reschedule_at = {}});
  const JobId id = put(job("flaky", "", 1));  // counted, this failure would be its last
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return sawEvent("on_failure") && attemptsAre(id, 0) && col(id, "last_error") != "NULL"; }, 15s))
      << w.describe();
  w.signal(SIGQUIT);
  expectExit(w, 0);
  EXPECT_FALSE(inFailedJobs(id));
  EXPECT_FALSE(sawEvent("permanent"));
  EXPECT_EQ(col(id, "attempts"), "0");
}

TEST_P(WorkerSemantics, CustomRescheduleTimes) {
  auto o = options();
  o.handlers.add("later", [](const Job&) { return Outcome::failure("not yet"); },
                 HandlerOptions{.on_failure = {},
                                .on_permanent_failure = {},
                                .reschedule_at = [](const Job&, int attempts) -> std::optional<hostq::TimePoint> {
                                  return std::chrono::time_point_cast<std::chrono::microseconds>(
                                      std::chrono::system_clock::now() + std::chrono::hours(attempts));
                                }});
  o.handlers.add("retry_at", [](const Job&) {
    return Outcome::retryAt("try tomorrow", std::chrono::time_point_cast<std::chrono::microseconds>(
                                                std::chrono::system_clock::now() + std::chrono::hours(24)));
  });
  const JobId a = put(job("later", "", 5)), b = put(job("retry_at", "", 5));
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return attemptsAre(a, 1) && attemptsAre(b, 1); }, 15s)) << w.describe();
  // The worker's clock + 1 h / 24 h, against the database's: equal up to the write's delay.
  EXPECT_NEAR(runAtAfterFailure(a), 3600.0, 30.0);
  EXPECT_NEAR(runAtAfterFailure(b), 86400.0, 30.0);
  EXPECT_EQ(col(b, "last_error").rfind("try tomorrow", 0), 0u);
  w.signal(SIGQUIT);
  expectExit(w, 0);
}

TEST_P(WorkerSemantics, AnExpiredJobFailsWithoutRunning) {
  auto o = options();
  o.handlers.add("t", [this](const Job&) { note("ran"); },
                 HandlerOptions{.on_failure = {},
                                .on_permanent_failure = [this](const Job&, const std::string& e) { note("permanent " + e); },
                                .reschedule_at = {}});
  auto j = job("t", "", 5);
  j.expires_at = std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now() - 1h);
  const JobId id = put(j);
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return inFailedJobs(id) && !events().empty(); }, 15s)) << w.describe();
  EXPECT_FALSE(exists(id));
  EXPECT_EQ(failedCol(id, "last_error").rfind("job has expired", 0), 0u) << failedCol(id, "last_error");
  EXPECT_EQ(events(), (std::vector<std::string>{"permanent job has expired"}));
  w.signal(SIGQUIT);
  expectExit(w, 0);
}

// The retry-or-permanent decision is the fail statement's, on the row as it is when the failure
// is written; the worker's hooks follow it. Here max_attempts changes in the database while the
// job runs: a worker judging by the copy it reserved would call the first failure permanent
// (the row then retries it) and the second a retry (the row then moves to failed_jobs).
TEST_P(WorkerSemantics, HooksFollowTheDatabaseWhenMaxAttemptsChangesWhileTheJobRuns) {
  auto o = options();
  o.handlers.add("slow_fail",
                 [this](const Job& j) {
                   note("ran " + std::to_string(j.id));
                   const std::string go = m_dir.file("go" + std::to_string(j.id));
                   waitUntil([&] { return std::filesystem::exists(go); }, 15s);
                   return Outcome::failure("bad input");
                 },
                 HandlerOptions{.on_failure = {},
                                .on_permanent_failure = [this](const Job& j, const std::string&) {
                                  note("permanent " + std::to_string(j.id));
                                },
                                .reschedule_at = {}});
  o.hooks.on_retry.push_back([this](const Job& j, const std::string&) { note("retry " + std::to_string(j.id)); });
  auto raised = job("slow_fail", "", 1);
  raised.priority = 1;  // runs first
  const JobId up = put(raised);
  const JobId down = put(job("slow_fail", "", 5));
  auto& w = startWorker(std::move(o));
  auto release = [&](JobId id, int max_attempts) {
    ASSERT_TRUE(waitUntil([&] { return sawEvent("ran " + std::to_string(id)); }, 15s)) << w.describe();
    sql("UPDATE delayed_jobs SET max_attempts = " + std::to_string(max_attempts) + " WHERE id = " + std::to_string(id));
    std::ofstream(m_dir.file("go" + std::to_string(id))) << "go";
  };
  release(up, 3);  // reserved as its last attempt; now it has two more
  ASSERT_TRUE(waitUntil([&] { return attemptsAre(up, 1); }, 15s)) << w.describe();
  EXPECT_FALSE(inFailedJobs(up));
  sql("UPDATE delayed_jobs SET run_at = '2100-01-01' WHERE id = " + std::to_string(up));  // not again here
  // Through a server the decision on `up` may arrive while `down` runs: its hook fires once the
  // worker is between jobs again, so `down` is released without waiting for it.
  release(down, 1);  // reserved with four attempts to spare; now this one is the last
  ASSERT_TRUE(waitUntil([&] { return inFailedJobs(down); }, 15s)) << w.describe();
  EXPECT_FALSE(exists(down));
  ASSERT_TRUE(waitUntil([&] { return sawEvent("retry " + std::to_string(up)) && sawEvent("permanent " + std::to_string(down)); }, 15s))
      << w.describe();
  w.signal(SIGQUIT);
  expectExit(w, 0);
  const auto ev = events();
  EXPECT_EQ(std::count(ev.begin(), ev.end(), "permanent " + std::to_string(up)), 0);
  EXPECT_EQ(std::count(ev.begin(), ev.end(), "retry " + std::to_string(down)), 0);
  EXPECT_EQ(std::count(ev.begin(), ev.end(), "ran " + std::to_string(down)), 1);
}

TEST_P(WorkerSemantics, HooksRunInOrderFirstAroundOutermost) {
  auto o = options();
  o.handlers.add("t", [this](const Job&) { note("handler"); });
  o.handlers.add("bad", [this](const Job&) -> Outcome {
    note("handler bad");
    throw std::runtime_error("thrown");
  });
  auto& h = o.hooks;
  h.before_perform.push_back([this](const Job& j) { note("before1 " + j.tag); });
  h.before_perform.push_back([this](const Job&) { note("before2"); });
  for (std::string n : {"1", "2"}) {
    h.around_perform.push_back([this, n](const Job&, const std::function<Outcome()>& next) {
      note("around" + n + " in");
      Outcome out = next();
      note("around" + n + " out " + (out.ok() ? "ok" : out.error()));
      return out;
    });
  }
  h.after_perform.push_back([this](const Job&, const Outcome& out) { note(std::string("after ") + (out.ok() ? "ok" : out.error())); });
  h.on_error.push_back([this](const Job&, const std::string& e) { note("on_error " + e); });
  h.on_retry.push_back([this](const Job&, const std::string& e) { note("on_retry " + e); });
  auto first = job("t");
  first.priority = 1;  // runs first
  const JobId a = put(first), b = put(job("bad", "", 2));
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return !exists(a) && attemptsAre(b, 1); }, 15s)) << w.describe();
  w.signal(SIGQUIT);
  expectExit(w, 0);
  EXPECT_EQ(events(), (std::vector<std::string>{
                          "before1 t", "before2", "around1 in", "around2 in", "handler", "around2 out ok",
                          "around1 out ok", "after ok",
                          "before1 bad", "before2", "around1 in", "around2 in", "handler bad",
                          "around2 out thrown", "around1 out thrown", "after thrown", "on_error thrown",
                          "on_retry thrown"}));
  EXPECT_EQ(col(b, "last_error").rfind("thrown", 0), 0u);
}

TEST_P(WorkerSemantics, NoHandlerFailsTheJobAndTheWorkerCarriesOn) {
  auto o = options();
  o.handlers.add("known", [this](const Job&) { note("known"); });
  auto unknown = job("Nobody#home");
  unknown.priority = 1;
  const JobId bad = put(unknown);
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return inFailedJobs(bad); }, 15s)) << w.describe();
  EXPECT_EQ(failedCol(bad, "last_error").rfind("no handler for Nobody#home", 0), 0u) << failedCol(bad, "last_error");
  const JobId good = put(job("known"));
  ASSERT_TRUE(waitUntil([&] { return !exists(good); }, 15s)) << w.describe();
  EXPECT_TRUE(w.running());
  EXPECT_EQ(events(), (std::vector<std::string>{"known"}));
  w.signal(SIGQUIT);
  expectExit(w, 0);
}

TEST_P(WorkerSemantics, QuitWhileAJobRunsLetsItFinish) {
  auto o = options();
  o.handlers.add("slow", [this](const Job&) {
    note("start");
    std::this_thread::sleep_for(1500ms);  // the job's own work, not a wait for a condition
    note("done");
  });
  const JobId id = put(job("slow"));
  auto& w = startWorker(std::move(o));
  ASSERT_TRUE(waitUntil([&] { return sawEvent("start"); }, 15s)) << w.describe();
  w.signal(SIGQUIT);
  expectExit(w, 0);
  EXPECT_EQ(events(), (std::vector<std::string>{"start", "done"}));
  ASSERT_TRUE(waitUntil([&] { return !exists(id); }, 10s));  // the server may still be flushing
  EXPECT_FALSE(inFailedJobs(id));
}

TEST_P(WorkerSemantics, TermWhileAJobRunsReschedulesItCountingAnAttempt) {
  auto o = options();
  o.handlers.add("slow", [this](const Job& j) {
    note("start " + std::to_string(j.id));
    std::this_thread::sleep_for(60s);  // killed long before
    note("done");
  });
  auto again = job("slow", "", 3);
  again.priority = 1;
  const JobId retried = put(again);
  auto& w1 = startWorker(o);
  ASSERT_TRUE(waitUntil([&] { return sawEvent("start " + std::to_string(retried)); }, 15s)) << w1.describe();
  w1.signal(SIGTERM);
  ASSERT_TRUE(w1.wait(10s).has_value()) << w1.describe();
  EXPECT_NE(w1.wait(0ms).value_or(0), 0);
  ASSERT_TRUE(waitUntil([&] { return attemptsAre(retried, 1); }, 15s))
      << col(retried, "locked_by") << "\n" << w1.describe() << "\nserver:\n" << m_server.err();
  EXPECT_NE(col(retried, "last_error").find("Terminated"), std::string::npos) << col(retried, "last_error");

  const JobId last = put(job("slow", "", 1));
  auto& w2 = startWorker(o);
  ASSERT_TRUE(waitUntil([&] { return sawEvent("start " + std::to_string(last)); }, 15s)) << w2.describe();
  w2.signal(SIGTERM);
  ASSERT_TRUE(w2.wait(10s).has_value()) << w2.describe();
  ASSERT_TRUE(waitUntil([&] { return inFailedJobs(last); }, 15s));
  EXPECT_EQ(failedCol(last, "attempts"), "1");
  EXPECT_FALSE(sawEvent("done"));
}

TEST_P(WorkerSemantics, MaxJobCountEndsTheWorkerAfterNJobs) {
  auto o = options();
  o.settings.max_job_count = 3;
  o.handlers.add("t", [this](const Job& j) { note(std::to_string(j.id)); });
  for (int i = 0; i < 5; ++i) put(job("t"));
  auto& w = startWorker(std::move(o));
  expectExit(w, 0);
  EXPECT_EQ(events().size(), 3u);
  ASSERT_TRUE(waitUntil([&] { return queryInt("SELECT count(*) FROM delayed_jobs") == 2; }, 10s));
}

TEST_P(WorkerSemantics, MemoryHighWaterEndsTheWorkerAfterTheFirstJob) {
  auto o = options();
  o.settings.memory_high_water = 1024;  // any process is bigger
  o.handlers.add("t", [this](const Job& j) { note(std::to_string(j.id)); });
  for (int i = 0; i < 3; ++i) put(job("t"));
  auto& w = startWorker(std::move(o));
  expectExit(w, 0);
  EXPECT_EQ(events().size(), 1u);
  ASSERT_TRUE(waitUntil([&] { return queryInt("SELECT count(*) FROM delayed_jobs") == 2; }, 10s));
}

INSTANTIATE_TEST_SUITE_P(Transports, WorkerSemantics,
                         ::testing::Values(Transport::Direct, Transport::Shm, Transport::Socket),
                         transportName);

}  // namespace
