// The `hostq` binary's store verbs, run as a user would run them: a real process, real exit
// codes, stdout and stderr, against the test database (each case in its own schema).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/json.hpp"
#include "support/db_fixture.hpp"
#include "support/run_hostq.hpp"

namespace {

using hostq::test::runHostq;
using hostq::test::RunResult;

class CliStore : public hostq::test::DbTest {
 protected:
  bool migrateOnSetUp() const override { return false; }

  void SetUp() override {
    DbTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(run({"migrate"}).code, 0);
  }

  // `hostq VERB …` against this test's schema.
  RunResult run(std::vector<std::string> args, const std::string& input = "") const {
    args.insert(args.end(), {"--database-url", url(), "--schema", schema()});
    hostq::test::RunOptions o;
    o.input = input;
    return runHostq(args, o);
  }

  // Runs and expects success; returns stdout lines.
  std::vector<std::string> ok(const std::vector<std::string>& args, const std::string& input = "") const {
    RunResult r = run(args, input);
    EXPECT_EQ(r.code, 0) << r.describe();
    return r.lines();
  }

  hostq::JobId enqueueOne(const std::vector<std::string>& args) const {
    auto lines = ok(args);
    EXPECT_EQ(lines.size(), 1u);
    return lines.empty() ? 0 : std::stoll(lines[0]);
  }

  // A job of `tag` moved to failed_jobs the way a worker's permanent failure does; returns its
  // original id.
  hostq::JobId failedJob(const std::string& tag) const {
    const hostq::JobId id = enqueueOne({"enqueue", tag});
    auto job = pop("host:1");
    EXPECT_TRUE(job && job->id == id);
    hostq::Failure f;
    f.id = id;
    f.locked_by = "host:1";
    f.error = "boom\nwith a second line";
    f.permanent = true;
    auto results = store->fail(std::span(&f, 1));
    EXPECT_EQ(results.at(0).outcome, hostq::FailOutcome::MovedToFailedJobs);
    return id;
  }
};

}  // namespace

TEST(CliHelp, EveryVerbHasHelpAndUsageErrorsExitTwo) {
  RunResult top = runHostq({"--help"});
  EXPECT_EQ(top.code, 0) << top.describe();
  for (const char* verb : {"migrate", "enqueue", "jobs", "hold", "unhold", "requeue"}) {
    EXPECT_NE(top.out.find(verb), std::string::npos) << verb;
    RunResult r = runHostq({verb, "--help"});
    EXPECT_EQ(r.code, 0) << verb << "\n" << r.describe();
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << verb;
  }
  EXPECT_EQ(runHostq({}).code, 2);
  EXPECT_EQ(runHostq({"no-such-verb"}).code, 2);
  EXPECT_EQ(runHostq({"jobs", "--no-such-flag"}).code, 2);
  EXPECT_EQ(runHostq({"enqueue"}).code, 2);  // TAG or --stdin
  EXPECT_EQ(runHostq({"enqueue", "t", "--strand", "a", "--n-strand", "b"}).code, 2);
  EXPECT_EQ(runHostq({"enqueue", "t", "--on-conflict", "overwrite"}).code, 2);
  EXPECT_EQ(runHostq({"enqueue", "t", "--singleton", "s", "--on-conflict", "sometimes"}).code, 2);
  EXPECT_EQ(runHostq({"enqueue", "t", "--priority", "high"}).code, 2);
  EXPECT_EQ(runHostq({"enqueue", "--stdin", "t"}).code, 2);
  EXPECT_EQ(runHostq({"hold"}).code, 2);
  EXPECT_EQ(runHostq({"hold", "x"}).code, 2);
}

TEST(CliHelp, AnUnreachableDatabaseIsAOneLineErrorAndExitOne) {
  RunResult r = runHostq({"jobs", "--database-url", "postgresql:///nodb?host=/nonexistent-hostq-dir"});
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("hostq jobs: ", 0), 0u) << r.err;
}

TEST_F(CliStore, MigrateTwiceTheSecondIsANoOp) {
  // SetUp migrated once already.
  auto lines = ok({"migrate"});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "schema at version " + std::to_string(hostq::Store::latestSchemaVersion()) + ", nothing to do");
}

TEST_F(CliStore, MigrateReportsTheVersionItMigratedTo) {
  sql("DROP SCHEMA " + schema() + " CASCADE");
  auto lines = ok({"migrate"});  // creates the schema named by --schema, too
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("migrated to version " + std::to_string(hostq::Store::latestSchemaVersion()), 0), 0u)
      << lines[0];
}

TEST_F(CliStore, EnqueuePrintsTheIdAndStoresEveryField) {
  const auto id = enqueueOne({"enqueue", "Mail#deliver", "{\"to\":42}", "--queue", "mail", "--priority", "5",
                              "--run-at", "2030-01-02T03:04:05Z", "--max-attempts", "3", "--expires-at",
                              "2031-01-01 00:00:00+01:00"});
  auto job = store->find(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->tag, "Mail#deliver");
  EXPECT_EQ(job->payload, "{\"to\":42}");
  EXPECT_EQ(job->queue, "mail");
  EXPECT_EQ(job->priority, 5);
  EXPECT_EQ(job->max_attempts, 3);
  using namespace std::chrono;
  EXPECT_EQ(job->run_at, hostq::TimePoint(sys_days(2030y / 1 / 2) + 3h + 4min + 5s));
  EXPECT_EQ(job->expires_at, hostq::TimePoint(sys_days(2030y / 12 / 31) + 23h));
}

TEST_F(CliStore, EnqueueRelativeRunAtAndStrands) {
  const auto later = enqueueOne({"enqueue", "t", "--run-at", "+3600"});
  EXPECT_GT(queryInt("SELECT extract(epoch FROM run_at - now())::int FROM delayed_jobs WHERE id = " +
                     std::to_string(later)),
            3500);
  const auto s1 = enqueueOne({"enqueue", "t", "--strand", "s"});
  const auto s2 = enqueueOne({"enqueue", "t", "--strand", "s"});
  EXPECT_TRUE(nextInStrand(s1));
  EXPECT_FALSE(nextInStrand(s2));
  const auto n = enqueueOne({"enqueue", "t", "--n-strand", "ns/x", "--max-concurrent", "2"});
  auto job = store->find(n);
  ASSERT_TRUE(job);
  EXPECT_TRUE(job->strand);
  EXPECT_EQ(job->max_concurrent, 2);
}

TEST_F(CliStore, SingletonOutcomesAreUpdatedOrDropped) {
  const auto id = enqueueOne({"enqueue", "t", "--singleton", "only"});
  // inst-jobs' overwrite replaces the payload (handler) and run_at.
  auto lines = ok({"enqueue", "t", "new payload", "--singleton", "only", "--on-conflict", "overwrite"});
  EXPECT_EQ(lines, std::vector<std::string>{"updated " + std::to_string(id)});
  EXPECT_EQ(store->find(id)->payload, "new payload");
  lines = ok({"enqueue", "t", "--singleton", "only", "--on-conflict", "loose"});
  EXPECT_EQ(lines, std::vector<std::string>{"dropped"});
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 1);
}

TEST_F(CliStore, ValidationErrorsExitOneWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    const char* expected;
  };
  const Case cases[] = {
      {{"enqueue", "t", "--priority", "-5"}, "priority"},
      {{"enqueue", "t", "--priority", "1000001"}, "priority"},
      {{"enqueue", "t", "--queue", " "}, "queue"},
      {{"enqueue", "t", "--run-at", "tomorrow"}, "run_at: not a time"},
      {{"enqueue", "t", "--expires-at", "2026-02-30"}, "expires_at: not a time"},
      {{"enqueue", "t", "--strand", "s", "--run-at", "+3600"}, "run_at"},
  };
  for (const auto& c : cases) {
    RunResult r = run(c.args);
    EXPECT_EQ(r.code, 1) << r.describe();
    EXPECT_EQ(r.err.rfind("hostq enqueue: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
}

TEST_F(CliStore, CountPrintsTheIdOfEveryCopy) {
  auto lines = ok({"enqueue", "Bulk#run", "p", "--count", "12345", "--queue", "bulk", "--priority", "7"});
  ASSERT_EQ(lines.size(), 12345u);
  std::vector<std::string> expected;
  std::istringstream ids(query("SELECT string_agg(id::text, ' ' ORDER BY id) FROM delayed_jobs"
                               " WHERE queue = 'bulk' AND priority = 7 AND tag = 'Bulk#run' AND handler = 'p'"));
  for (std::string id; ids >> id;) expected.push_back(id);
  EXPECT_EQ(lines, expected);
  // Not plain: each copy goes through the singleton logic and prints what a single enqueue would.
  lines = ok({"enqueue", "One#run", "--count", "3", "--singleton", "one", "--on-conflict", "loose"});
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], query("SELECT id FROM delayed_jobs WHERE singleton = 'one'"));
  EXPECT_EQ(lines[1], "dropped");
  EXPECT_EQ(lines[2], "dropped");
  // --quiet: the jobs, no output.
  RunResult quiet = run({"enqueue", "Quiet#run", "--count", "5", "--quiet"});
  EXPECT_EQ(quiet.code, 0) << quiet.describe();
  EXPECT_EQ(quiet.out, "");
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE tag = 'Quiet#run'"), 5);
}

TEST_F(CliStore, StdinEnqueuesOneJobPerLine) {
  const std::string input =
      "{\"tag\": \"a\", \"payload\": \"x\\ny\"}\n"
      "\n"
      "{\"tag\": \"b\", \"strand\": \"s\", \"priority\": 3, \"max_attempts\": 2}\n"
      "{\"tag\": \"c\", \"queue\": \"other\", \"run_at\": \"+600\"}\n"
      "{\"tag\": \"d\", \"singleton\": \"one\"}\n"
      "{\"tag\": \"e\", \"singleton\": \"one\", \"on_conflict\": \"loose\", \"expires_at\": null}\n";
  auto lines = ok({"enqueue", "--stdin", "--queue", "dflt"}, input);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[4], "dropped");
  auto a = store->find(std::stoll(lines[0]));
  auto b = store->find(std::stoll(lines[1]));
  auto c = store->find(std::stoll(lines[2]));
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->payload, "x\ny");
  EXPECT_EQ(a->queue, "dflt");  // the flag is the default
  EXPECT_EQ(b->strand, "s");
  EXPECT_EQ(b->priority, 3);
  EXPECT_EQ(b->max_attempts, 2);
  EXPECT_EQ(c->queue, "other");
  EXPECT_EQ(store->find(std::stoll(lines[3]))->singleton, "one");
}

TEST_F(CliStore, StdinWithABadLineEnqueuesNothing) {
  for (const std::string bad : {"{\"tag\": \"ok\"}\n{\"tag\": \"b\", \"colour\": \"red\"}\n",
                                "{\"tag\": \"ok\"}\n{\"tag\": \"b\", \"priority\": \"high\"}\n",
                                "{\"tag\": \"ok\"}\n{\"tag\": \"b\",}\n", "{\"tag\": \"ok\"}\n{\"payload\": \"no tag\"}\n",
                                "{\"tag\": \"ok\"}\n{\"tag\": \"b\", \"run_at\": \"soon\"}\n"}) {
    RunResult r = run({"enqueue", "--stdin"}, bad);
    EXPECT_EQ(r.code, 1) << r.describe();
    EXPECT_NE(r.err.find("stdin line 2: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing enqueued"), std::string::npos) << r.err;
  }
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
}

TEST_F(CliStore, JobsListsTableJsonAndCounts) {
  const auto a = enqueueOne({"enqueue", "A#run", "--queue", "qa"});
  const auto b = enqueueOne({"enqueue", "B#run", "--queue", "qb", "--run-at", "+3600"});
  const auto c = enqueueOne({"enqueue", "C#run", "--queue", "qb", "--strand", "s"});
  const auto d = enqueueOne({"enqueue", "D#run", "--queue", "qb", "--strand", "s"});

  auto table = ok({"jobs"});
  ASSERT_EQ(table.size(), 5u);
  EXPECT_EQ(table[0].rfind("ID", 0), 0u);
  EXPECT_NE(table[0].find("STATE"), std::string::npos);

  std::map<hostq::JobId, std::string> states;
  for (const auto& line : ok({"jobs", "--json"})) {
    const auto o = hostq::Json::parse(line);
    states[o.at("id").get<hostq::JobId>()] = o.at("state").get<std::string>();
  }
  EXPECT_EQ(states, (std::map<hostq::JobId, std::string>{{a, "queued"}, {b, "future"}, {c, "queued"}, {d, "blocked"}}));

  EXPECT_EQ(ok({"jobs", "--queue", "qa", "--json"}).size(), 1u);
  EXPECT_EQ(ok({"jobs", "--queue", "qb", "--json", "--limit", "2"}).size(), 2u);

  auto counts = ok({"jobs", "--counts", "--json"});
  ASSERT_EQ(counts.size(), 2u);
  std::map<std::string, std::map<std::string, std::int64_t>> byQueue;
  for (const auto& line : counts) {
    std::string queue;
    std::map<std::string, std::int64_t> n;
    const auto o = hostq::Json::parse(line);
    for (const auto& [k, v] : o.items()) {
      if (k == "queue") {
        queue = v.get<std::string>();
      } else {
        n[k] = v.get<std::int64_t>();
      }
    }
    byQueue[queue] = n;
  }
  EXPECT_EQ(byQueue["qa"]["queued"], 1);
  EXPECT_EQ(byQueue["qb"]["queued"], 1);
  EXPECT_EQ(byQueue["qb"]["future"], 1);
  EXPECT_EQ(byQueue["qb"]["blocked"], 1);
  auto countTable = ok({"jobs", "--counts"});
  EXPECT_EQ(countTable.size(), 3u);
  EXPECT_EQ(countTable[0].rfind("QUEUE", 0), 0u);
}

TEST_F(CliStore, HoldAndUnhold) {
  const auto a = enqueueOne({"enqueue", "t"});
  const auto b = enqueueOne({"enqueue", "t"});
  EXPECT_EQ(ok({"hold", std::to_string(a), std::to_string(b)}), std::vector<std::string>{"held 2"});
  EXPECT_EQ(store->find(a)->locked_by, hostq::kOnHold);
  EXPECT_FALSE(pop("host:1"));

  RunResult again = run({"hold", std::to_string(a), "999999"});
  EXPECT_EQ(again.code, 1) << again.describe();
  EXPECT_EQ(again.out, "held 0\n");
  EXPECT_NE(again.err.find("2 of 2 jobs not held"), std::string::npos) << again.err;

  EXPECT_EQ(ok({"unhold", std::to_string(a)}), std::vector<std::string>{"unheld 1"});
  EXPECT_FALSE(store->find(a)->locked_by);
  EXPECT_EQ(run({"unhold", std::to_string(a)}).code, 1);
  auto job = pop("host:1");
  ASSERT_TRUE(job);
  EXPECT_EQ(job->id, a);
}

TEST_F(CliStore, RequeueByOriginalOrFailedId) {
  const auto first = failedJob("First#run");
  const auto second = failedJob("Second#run");
  const auto secondFailedId = store->findFailed(second)->id;

  auto failedList = ok({"jobs", "--failed", "--json"});
  EXPECT_EQ(failedList.size(), 2u);
  auto failedTable = ok({"jobs", "--failed"});
  ASSERT_EQ(failedTable.size(), 3u);
  EXPECT_NE(failedTable[1].find("boom with a second line"), std::string::npos) << failedTable[1];

  auto lines = ok({"requeue", std::to_string(first)});
  ASSERT_EQ(lines.size(), 1u);
  auto requeued = store->find(std::stoll(lines[0]));
  ASSERT_TRUE(requeued);
  EXPECT_EQ(requeued->tag, "First#run");

  lines = ok({"requeue", std::to_string(secondFailedId)});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(store->find(std::stoll(lines[0]))->tag, "Second#run");

  RunResult missing = run({"requeue", "987654"});
  EXPECT_EQ(missing.code, 1) << missing.describe();
  EXPECT_NE(missing.err.find("987654"), std::string::npos) << missing.err;
}

TEST_F(CliStore, DatabaseUrlComesFromTheEnvironment) {
  hostq::test::RunOptions o;
  o.env = {{"HOSTQ_DATABASE_URL", url()}};
  RunResult r = runHostq({"enqueue", "t", "--schema", schema()}, o);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 1);
}
