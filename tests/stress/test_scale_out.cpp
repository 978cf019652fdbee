// Scale-out on one database: 16 simulated hosts × 4 workers burn down jobs through
// `hostq bench --hosts 16` (the harness the figures in docs/performance.md come from), each job a
// hostq.append that records its run. Every job must run exactly once, each host's server must
// report the jobs its workers recorded, and no host may hold more database connections than its
// server opens by configuration. Nothing here is timed: on this 2-core machine 80 hostq processes
// and PostgreSQL share two cores, and a burn-down takes what it takes (bounded only by the
// timeouts below).
//
// The 200,000-job burn-down uses written-lock claims (--held-batches 0). With the default
// held-lock claims, 16 hosts' open batches keep most of the queue's head row-locked and every
// claim skips those rows: measured on this machine at 16 × 4 and 100,000 jobs, ~900 jobs/s and
// ~1 ms of PostgreSQL CPU per job against ~17,000 jobs/s and ~40 µs with written locks
// (docs/performance.md, "Scale-out on one database"), and slower still while other tests load the
// machine. The servers' default (held-lock claims, switched to written-lock claims once a server's
// monitor counts more than held_max_hosts live hosts, about a second in) gets its own exactly-once
// burn-down of 20,000 jobs: both claims, and the switch between them, under 16 hosts.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <optional>

#include "common/json.hpp"
#include "hostq/config.hpp"
#include "support/farm.hpp"
#include "support/run_hostq.hpp"
#include "support/reliability_farm.hpp"

namespace hostq::test {
namespace {

using namespace rel;
using namespace std::chrono_literals;

constexpr int kHosts = 16;
constexpr int kWorkersPerHost = 4;

/// The server's connections besides its held-lock batch channels (server.cpp, host_monitor.cpp):
/// its main store, the result writer's, the reservation runner's, the LISTEN connection, and the
/// host monitor's two (heartbeats/reaping, periodic jobs). The HTTP probe's is not opened without
/// --http. Workers on shared memory open none.
constexpr int kServerOtherConnections = 6;

class ScaleOut : public FarmTest {
 protected:
  /// `jobs` append jobs through `hostq bench --hosts 16 --workers 4` with `held_batches` batch
  /// channels per server (nullopt: the server's default), then the audit.
  void burnDown(std::optional<int> held_batches, std::int64_t jobs) {
    // What one host may hold at most: every held-lock batch channel open at once, plus the rest.
    const int perHost = held_batches.value_or(ServerSettings{}.held_batches) + kServerOtherConnections;
    ScratchDir dir;
    const std::string file = dir.file("runs.txt");
    Sql db(url(), schema());
    const std::int64_t before = lastJobId(db);
    std::vector<std::string> args{"bench", "--hosts", std::to_string(kHosts), "--workers", std::to_string(kWorkersPerHost),
                                  "--jobs", std::to_string(jobs), "--handler", "append:" + file, "--json",
                                  // bench's own timeout fails the run (exit 1, saying what is left and who
                                  // holds it) before ours kills it.
                                  "--timeout", "400",
                                  // Its own host names: another bench on the test database counts its own.
                                  "--hostname", "scaleout", "--database-url", url(), "--schema", schema()};
    if (held_batches) args.insert(args.end(), {"--held-batches", std::to_string(*held_batches)});
    RunOptions run;
    run.timeout = 450s;
    const auto r = runHostq(args, run);
    ASSERT_EQ(r.code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;

    // The jobs bench enqueued: the id sequence's range across the run (nothing else enqueues here).
    const std::int64_t after = lastJobId(db);
    ASSERT_EQ(after - before, jobs);
    std::vector<std::int64_t> ids(static_cast<std::size_t>(jobs));
    std::iota(ids.begin(), ids.end(), before + 1);
    const auto lines = readAppendFile(file);
    const Audit a = audit(db, ids, lines, {});
    expectEachRanOnce(a, static_cast<std::size_t>(jobs));
    EXPECT_EQ(a.in_delayed + a.unknown_lines, 0u) << a.summary();

    std::map<std::string, double> ranBy;  // host → runs its workers recorded
    for (const auto& l : lines) ranBy[l.worker.substr(0, l.worker.rfind(':'))] += 1;
    for (const auto& [host, runs] : ranBy)
      EXPECT_TRUE(host.rfind("scaleout-", 0) == 0) << runs << " runs by a worker of no simulated host: " << host;

    const Json o = parseJsonOrDiscard(r.out);
    ASSERT_TRUE(o.is_object()) << r.out;
    EXPECT_EQ(numberAt(o, "/hosts"), kHosts) << r.out;
    EXPECT_EQ(numberAt(o, "/jobs"), static_cast<double>(jobs)) << r.out;
    ASSERT_TRUE(o.contains("per_host") && o["per_host"].is_array()) << r.out;
    ASSERT_EQ(o["per_host"].size(), static_cast<std::size_t>(kHosts)) << r.out;
    double reported = 0;
    for (std::size_t i = 0; i < o["per_host"].size(); ++i) {
      const Json& h = o["per_host"][i];
      const std::string name = h.value("hostname", "");
      EXPECT_EQ(name, "scaleout-" + std::to_string(i + 1));
      // The server's count of its host's jobs is the count of runs its workers recorded.
      const auto done = numberAt(h, "/jobs");
      ASSERT_TRUE(done) << h.dump();
      const auto ran = ranBy.find(name);
      EXPECT_EQ(*done, ran == ranBy.end() ? 0.0 : ran->second) << name;
      reported += *done;
      // A host with no backend seen would mean the sampling missed it, not a frugal server.
      const auto peak = numberAt(h, "/db_connections_peak");
      ASSERT_TRUE(peak) << h.dump();
      EXPECT_GE(*peak, 1) << name;
      EXPECT_LE(*peak, perHost) << name << ": more backends than the server's configured connections";
    }
    EXPECT_EQ(reported, static_cast<double>(jobs));
    const auto total = numberAt(o, "/db_connections_peak");
    ASSERT_TRUE(total) << r.out;
    EXPECT_LE(*total, kHosts * perHost);
    std::printf("[scale-out] %d hosts x %d workers, %s claims: %.0f jobs/s, %.0f connections at most (%d allowed), %s\n",
                kHosts, kWorkersPerHost, held_batches == 0 ? "written-lock" : "held-lock",
                numberAt(o, "/jobs_per_second").value_or(0), *total, kHosts * perHost, a.summary().c_str());
  }
};

TEST_F(ScaleOut, SixteenHostsBurnDown200000JobsEachExactlyOnceOnBoundedConnections) { burnDown(0, 200'000); }

TEST_F(ScaleOut, SixteenHostsWithHeldLockClaimsRunEachJobExactlyOnceOnBoundedConnections) {
  burnDown(std::nullopt, 20'000);
}

}  // namespace
}  // namespace hostq::test
