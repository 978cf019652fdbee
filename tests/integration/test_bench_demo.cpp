// `hostq bench` and `hostq demo` as a user runs them: the real binary forking a real pool against
// the test database (each case in its own schema, its own private socket), kept small.
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
#include "support/farm.hpp"
#include "support/run_hostq.hpp"

namespace {

using hostq::test::RunResult;

// Never the developer's own HOSTQ_DATABASE_URL or socket: the flags say everything.
RunResult runHostq(const std::vector<std::string>& args) {
  hostq::test::RunOptions o;
  o.env = {{"HOSTQ_DATABASE_URL", ""}, {"HOSTQ_SOCKET", ""}};
  o.timeout = std::chrono::minutes(5);
  return hostq::test::runHostq(args, o);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) v.push_back(l);
  return v;
}

double number(const hostq::Json& o, const std::string& key) { return hostq::numberAt(o, "/" + key).value_or(-1); }

class BenchDemo : public hostq::test::DbTest {
 protected:
  bool migrateOnSetUp() const override { return false; }
};

TEST_F(BenchDemo, BenchShmPrintsOneJsonObjectPerRunAndWritesCsvAndSvg) {
  const auto out = std::filesystem::temp_directory_path() / ("hostq-bench-out-" + std::to_string(::getpid()));
  std::filesystem::remove_all(out);
  RunResult r = runHostq({"bench", "--transport", "shm", "--workers", "2", "--jobs", "2000", "--json", "--out", out.string(),
                        "--database-url", url(), "--schema", schema()});
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto ls = lines(r.out);
  ASSERT_EQ(ls.size(), 1u) << r.describe();
  const auto o = hostq::Json::parse(ls[0]);
  for (const char* key : {"transport", "workers", "jobs", "jobs_per_second", "db_statements_per_job", "handoff_p50_us",
                          "handoff_p99_us", "xact_commit_per_job", "cpu_server_us_per_job", "cpu_workers_us_per_job",
                          "cpu_postgres_us_per_job", "enqueue_to_start_p50_us", "enqueue_to_start_p99_us",
                          "enqueue_to_start_p999_us", "handoff_p999_us", "server_peak_rss_kb", "worker_peak_rss_kb",
                          "job_gap_p50_us", "fairness_worst_gap_ratio", "workers_served"})
    EXPECT_TRUE(o.contains(key)) << "missing " << key << " in " << ls[0];
  EXPECT_EQ(o.value("transport", ""), "shm");
  EXPECT_EQ(number(o, "workers"), 2);
  EXPECT_EQ(number(o, "jobs"), 2000);
  EXPECT_GT(number(o, "jobs_per_second"), 0) << ls[0];
  // The server reserves and completes in batches: far fewer statements than jobs, but some.
  EXPECT_GT(number(o, "db_statements_per_job"), 0) << ls[0];
  EXPECT_LT(number(o, "db_statements_per_job"), 2) << ls[0];
  EXPECT_GT(number(o, "handoff_p50_us"), 0) << ls[0];
  EXPECT_GT(number(o, "enqueue_to_start_p999_us"), 0) << ls[0];
  EXPECT_EQ(number(o, "workers_served"), 2) << ls[0];
  EXPECT_GT(number(o, "server_peak_rss_kb"), 0) << ls[0];
  // Every job was really run and deleted.
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
  EXPECT_EQ(queryInt("SELECT count(*) FROM failed_jobs"), 0);

  EXPECT_EQ(lines(hostq::test::slurpFile(out / "runs.csv")).size(), 2u);
  const std::string svg = hostq::test::slurpFile(out / "chart.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("<rect"), std::string::npos);      // a bar
  EXPECT_NE(svg.find("<polyline"), std::string::npos);  // a histogram line
  std::filesystem::remove_all(out);
}

// Two simulated hosts on one database: each its own hostname and server, the jobs shared, the
// figures per host and in total (the 16-host burn-down is stress.ScaleOut).
TEST_F(BenchDemo, BenchHostsRunsOneFarmPerHostAndReportsEach) {
  const auto out = std::filesystem::temp_directory_path() / ("hostq-bench-hosts-" + std::to_string(::getpid()));
  std::filesystem::remove_all(out);
  RunResult r = runHostq({"bench", "--hosts", "2", "--workers", "2", "--jobs", "4000", "--json", "--out", out.string(),
                        "--hostname", "benchdemo", "--database-url", url(), "--schema", schema()});
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto ls = lines(r.out);
  ASSERT_EQ(ls.size(), 1u) << r.describe();
  const auto o = hostq::Json::parse(ls[0]);
  EXPECT_EQ(number(o, "hosts"), 2);
  EXPECT_EQ(number(o, "workers"), 2);  // per host
  EXPECT_EQ(number(o, "jobs"), 4000);
  EXPECT_GT(number(o, "db_statements_per_job"), 0) << ls[0];
  ASSERT_TRUE(o.contains("per_host") && o["per_host"].is_array() && o["per_host"].size() == 2u) << ls[0];
  double jobs = 0, statements = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& h = o["per_host"][i];
    EXPECT_EQ(h.value("hostname", ""), "benchdemo-" + std::to_string(i + 1)) << ls[0];
    for (const char* key : {"jobs", "jobs_per_sec", "db_connections_peak", "statements_per_job"})
      EXPECT_GE(number(h, key), 0) << "missing " << key << " in " << ls[0];
    // Each host's server holds at least its main connection while it runs.
    EXPECT_GE(number(h, "db_connections_peak"), 1) << ls[0];
    EXPECT_LE(number(h, "db_connections_peak"), number(o, "db_connections_peak")) << ls[0];
    jobs += number(h, "jobs");
    statements += number(h, "db_statements");
  }
  EXPECT_EQ(jobs, 4000) << ls[0];
  EXPECT_EQ(statements, number(o, "db_statements")) << ls[0];
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
  EXPECT_EQ(lines(hostq::test::slurpFile(out / "hosts.csv")).size(), 3u);
  std::filesystem::remove_all(out);
}

TEST_F(BenchDemo, BenchRejectsZeroHosts) {
  RunResult r = runHostq({"bench", "--hosts", "0", "--database-url", url(), "--schema", schema()});
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_NE(r.err.find("--hosts"), std::string::npos) << r.err;
}

TEST_F(BenchDemo, DemoRunsShmThenDirectAndPrintsTheSummary) {
  RunResult r = runHostq({"demo", "--jobs", "5000", "--direct-jobs", "1000", "--database-url", url(), "--schema", schema()});
  ASSERT_EQ(r.code, 0) << r.describe();
  for (const char* text : {"jobs/s", "database statements per job", "hand-off p50 / p99", "of requests sent ahead", "job gap p50 / p99", "direct",
                           "the jobs/s of direct mode", "direct mode ran 1,000 jobs instead of 5,000"})
    EXPECT_NE(r.out.find(text), std::string::npos) << "missing \"" << text << "\"\n" << r.describe();
  // Not a terminal: plain progress lines, never a carriage return.
  EXPECT_EQ(r.err.find('\r'), std::string::npos);
  EXPECT_NE(r.err.find("5,000/5,000 jobs"), std::string::npos) << r.err;
  EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0);
}

TEST_F(BenchDemo, BenchRejectsAnUnknownTransportBeforeStartingAnything) {
  RunResult r = runHostq({"bench", "--transport", "carrier-pigeon", "--database-url", url(), "--schema", schema()});
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_NE(r.err.find("carrier-pigeon"), std::string::npos) << r.err;
}

}  // namespace
