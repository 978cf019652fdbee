// The operator's verbs by selection: `hostq jobs --tag/--strand/--state`, `jobs --counts --by`,
// `hold`/`unhold` by tag, strand and queue, `destroy` (through the triggers) and `cleanup`. Real
// binary, real PostgreSQL, each case in its own schema.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "common/json.hpp"
#include "support/db_fixture.hpp"
#include "support/run_hostq.hpp"

namespace {

using hostq::JobId;
using hostq::Json;
using hostq::test::RunResult;

class CliAdmin : public hostq::test::DbTest {
 protected:
  RunResult run(std::vector<std::string> args) const {
    args.insert(args.end(), {"--database-url", url(), "--schema", schema()});
    return hostq::test::runHostq(args);
  }
  std::vector<std::string> ok(const std::vector<std::string>& args) const {
    const RunResult r = run(args);
    EXPECT_EQ(r.code, 0) << "exit " << r.code << "\n" << r.out << r.err;
    std::vector<std::string> lines;
    std::istringstream in(r.out);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  JobId enqueue(const std::vector<std::string>& args) const {
    std::vector<std::string> a{"enqueue"};
    a.insert(a.end(), args.begin(), args.end());
    const auto lines = ok(a);
    EXPECT_EQ(lines.size(), 1u);
    return lines.empty() ? 0 : std::stoll(lines[0]);
  }
  /// id → state of `hostq jobs ARGS --json`.
  std::map<JobId, std::string> states(std::vector<std::string> args) const {
    args.insert(args.begin(), "jobs");
    args.push_back("--json");
    std::map<JobId, std::string> out;
    for (const auto& line : ok(args)) {
      const auto j = Json::parse(line);
      out[j.at("id").get<JobId>()] = j.at("state").get<std::string>();
    }
    return out;
  }
  /// key → column → count of `hostq jobs --counts --by BY --json ARGS`.
  std::map<std::string, std::map<std::string, std::int64_t>> counts(const std::string& by,
                                                                    std::vector<std::string> args = {}) const {
    args.insert(args.begin(), {"jobs", "--counts", "--by", by, "--json"});
    std::map<std::string, std::map<std::string, std::int64_t>> out;
    for (const auto& line : ok(args)) {
      std::string key;
      std::map<std::string, std::int64_t> n;
      const auto row = Json::parse(line);  // items() refers to it: not a temporary
      for (const auto& [k, v] : row.items()) {
        if (k == by) {
          key = v.get<std::string>();
        } else {
          n[k] = v.get<std::int64_t>();
        }
      }
      out[key] = n;
    }
    return out;
  }
  /// A job of `tag` (queue "doomed") moved to failed_jobs the way a worker's permanent failure
  /// does; returns its original id.
  JobId failed(const std::string& tag) {
    const JobId id = enqueue({tag, "--queue", "doomed"});
    auto job = pop("host:1", "doomed");
    EXPECT_TRUE(job && job->id == id);
    hostq::Failure f = failure(id, "host:1");
    f.permanent = true;
    EXPECT_EQ(store->fail(std::span(&f, 1)).at(0).outcome, hostq::FailOutcome::MovedToFailedJobs);
    return id;
  }
};

TEST_F(CliAdmin, JobsFiltersByTagStrandQueueAndStateTogether) {
  const JobId a = enqueue({"Mail#deliver", "--queue", "mail"});
  const JobId b = enqueue({"Mail#deliver", "--queue", "mail", "--run-at", "+3600"});
  const JobId c = enqueue({"Mail#deliver", "--queue", "bulk", "--strand", "s"});
  const JobId d = enqueue({"Import#row", "--queue", "bulk", "--strand", "s"});
  const JobId e = enqueue({"Import#row", "--queue", "bulk"});
  ASSERT_EQ(pop("host:9", "bulk")->id, c);  // c runs; d waits for it

  using M = std::map<JobId, std::string>;
  EXPECT_EQ(states({"--tag", "Mail#deliver"}), (M{{a, "queued"}, {b, "future"}, {c, "running"}}));
  EXPECT_EQ(states({"--tag", "Mail#deliver", "--queue", "mail"}), (M{{a, "queued"}, {b, "future"}}));
  EXPECT_EQ(states({"--strand", "s"}), (M{{c, "running"}, {d, "blocked"}}));
  EXPECT_EQ(states({"--state", "blocked"}), (M{{d, "blocked"}}));
  EXPECT_EQ(states({"--state", "queued", "--queue", "bulk"}), (M{{e, "queued"}}));
  EXPECT_EQ(states({"--tag", "Import#row", "--strand", "s", "--state", "queued"}), M{});
  // Runnable first (by id), then future: b, the only future job, comes last.
  const auto table = ok({"jobs"});
  ASSERT_EQ(table.size(), 6u);
  EXPECT_EQ(table[5].rfind(std::to_string(b) + " ", 0), 0u) << table[5];

  const JobId f = failed("Mail#deliver");
  EXPECT_EQ(states({"--state", "failed", "--tag", "Mail#deliver"}).size(), 1u);
  EXPECT_EQ(states({"--failed", "--tag", "Import#row"}).size(), 0u);
  (void)f;

  auto byTag = counts("tag");
  EXPECT_EQ(byTag["Mail#deliver"]["queued"], 1);
  EXPECT_EQ(byTag["Mail#deliver"]["future"], 1);
  EXPECT_EQ(byTag["Mail#deliver"]["running"], 1);
  EXPECT_EQ(byTag["Mail#deliver"]["failed"], 1);
  EXPECT_EQ(byTag["Import#row"]["queued"], 1);
  EXPECT_EQ(byTag["Import#row"]["blocked"], 1);
  auto byStrand = counts("strand");
  ASSERT_EQ(byStrand.size(), 1u);  // jobs without a strand are not a row
  EXPECT_EQ(byStrand["s"]["running"], 1);
  EXPECT_EQ(byStrand["s"]["blocked"], 1);
  auto byQueueOfTag = counts("queue", {"--tag", "Import#row"});
  ASSERT_EQ(byQueueOfTag.size(), 1u);
  EXPECT_EQ(byQueueOfTag["bulk"]["queued"], 1);
  const auto table2 = ok({"jobs", "--counts", "--by", "strand"});
  ASSERT_EQ(table2.size(), 2u);
  EXPECT_EQ(table2[0].rfind("STRAND", 0), 0u);

  EXPECT_EQ(run({"jobs", "--state", "sleeping"}).code, 2);
  EXPECT_EQ(run({"jobs", "--by", "tag"}).code, 2);  // --by needs --counts
}

TEST_F(CliAdmin, HoldAndUnholdBySelectorsAndedTogether) {
  const JobId a = enqueue({"Report#build", "--queue", "reports"});
  const JobId b = enqueue({"Report#build", "--queue", "reports"});
  const JobId c = enqueue({"Report#build", "--queue", "other"});
  const JobId d = enqueue({"Mail#deliver", "--queue", "reports"});
  ASSERT_EQ(pop("host:9", "reports")->id, a);  // running: cannot be held

  EXPECT_EQ(ok({"hold", "--tag", "Report#build", "--queue", "reports"}), std::vector<std::string>{"held 1"});
  EXPECT_EQ(query("SELECT string_agg(id::text, ',' ORDER BY id) FROM delayed_jobs WHERE locked_by = 'on hold'"),
            std::to_string(b));
  EXPECT_EQ(ok({"hold", "--queue", "reports", std::to_string(d), std::to_string(c)}),
            std::vector<std::string>{"held 1"});  // c is not in queue reports
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = 'on hold'"), 2);
  EXPECT_EQ(ok({"unhold", "--queue", "reports"}), std::vector<std::string>{"unheld 2"});
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs WHERE locked_by = 'on hold'"), 0);
  EXPECT_EQ(store->find(b)->attempts, 0);
  EXPECT_EQ(run({"hold"}).code, 2);
  EXPECT_EQ(run({"unhold"}).code, 2);
}

TEST_F(CliAdmin, DestroyLeavesRunningJobsAndAdvancesTheStrand) {
  const JobId a = enqueue({"Import#row", "--strand", "imports"});
  const JobId b = enqueue({"Import#row", "--strand", "imports"});
  const JobId c = enqueue({"Import#row", "--strand", "imports"});
  const JobId other = enqueue({"Other#run"});
  EXPECT_FALSE(nextInStrand(b));

  // The head of the strand is deleted as if it had completed: b becomes runnable.
  EXPECT_EQ(ok({"destroy", std::to_string(a)}), std::vector<std::string>{"destroyed 1"});
  EXPECT_FALSE(exists(a));
  EXPECT_TRUE(nextInStrand(b));
  EXPECT_FALSE(nextInStrand(c));

  ASSERT_EQ(pop("host:1")->id, b);  // b runs now
  EXPECT_EQ(ok({"destroy", "--strand", "imports"}), std::vector<std::string>{"destroyed 1"});  // c only
  EXPECT_TRUE(exists(b));
  EXPECT_FALSE(exists(c));
  EXPECT_TRUE(exists(other));

  // Held jobs go too; selectors AND with ids.
  const JobId h = enqueue({"Held#run"});
  ok({"hold", std::to_string(h)});
  EXPECT_EQ(ok({"destroy", "--tag", "Nope", std::to_string(h)}), std::vector<std::string>{"destroyed 0"});
  EXPECT_EQ(ok({"destroy", "--tag", "Held#run"}), std::vector<std::string>{"destroyed 1"});

  // --failed: failed_jobs rows, by their selection.
  failed("Broken#run");
  failed("Broken#run");
  failed("Fine#run");
  EXPECT_EQ(ok({"destroy", "--failed", "--tag", "Broken#run"}), std::vector<std::string>{"destroyed 2"});
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 1);
  EXPECT_EQ(run({"destroy"}).code, 2);  // everything needs saying so
}

TEST_F(CliAdmin, CleanupRemovesOnlyOldFailedJobs) {
  const JobId old1 = failed("Old#run");
  failed("Old#run");
  const JobId fresh = failed("Fresh#run");
  sql("UPDATE failed_jobs SET failed_at = failed_at - interval '3 days' WHERE tag = 'Old#run'");
  EXPECT_EQ(ok({"cleanup", "--failed-older-than", "2d"}), std::vector<std::string>{"deleted 2"});
  EXPECT_FALSE(store->findFailed(old1));
  EXPECT_TRUE(store->findFailed(fresh));
  EXPECT_EQ(ok({"cleanup", "--failed-older-than", "1h"}), std::vector<std::string>{"deleted 0"});
  EXPECT_EQ(run({"cleanup", "--failed-older-than", "soon"}).code, 2);
}

}  // namespace
