// A burn-down and a run of single jobs on a real server with real workers: every job is done,
// through batched statements, and every job enqueued on an idle pool starts. The speed goals
// (statements per job, enqueue-to-start latency) are measured by perf/bench_server.cpp: as bounds
// here they flaked whenever the machine was loaded.
#include <gtest/gtest.h>

#include <cstdio>

#include "support/server_harness.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

class ServerThroughput : public ServerTest {};

// Results are written in batches and a reservation serves many requests: fewer statements than
// jobs. A loaded machine only makes the batches larger, so this bound cannot flake.
TEST_F(ServerThroughput, BurnDownFinishesWithBatchedStatements) {
  constexpr int kJobs = 4000;
  std::vector<NewJob> jobs(kJobs, job("hostq.noop"));
  ASSERT_EQ(store->enqueueBulk(jobs), static_cast<std::size_t>(kJobs));
  auto server = startServer({"--poll-interval", "1s"});
  std::vector<HostqProcess> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(startWorker());
  std::string s;
  ASSERT_TRUE(waitUntil([&] {
    auto st = monitor->stats();
    if (!st) return false;
    s = *st;
    return statNumber(s, "jobs_completed") == kJobs;
  }, 120s)) << s;
  EXPECT_EQ(count("true"), 0);
  const double per_job = statNumber(s, "db_statements_per_job").value_or(-1);
  std::printf("[ burn-down ] %d jobs, 4 workers: %.0f statements, %.4f per job\n", kJobs,
              statNumber(s, "db_statements").value_or(-1), per_job);
  EXPECT_GT(per_job, 0) << s;
  EXPECT_LT(per_job, 1) << s;
  EXPECT_EQ(statNumber(s, "result_mismatches"), 0);
}

// Each job enqueued while the pool waits is handed out and run.
TEST_F(ServerThroughput, EveryJobEnqueuedOnAnIdlePoolStarts) {
  constexpr int kWorkers = 2;
  constexpr int kSamples = 20;
  auto server = startServer();
  std::vector<HostqProcess> workers;
  for (int i = 0; i < kWorkers; ++i) workers.push_back(startWorker());
  const std::string file = dir() + "/ran";
  auto pool_idle = [&](const std::string& s) {
    return statNumber(s, "workers_waiting") == kWorkers && statFlag(s, "drained");
  };
  NewJob j = job("hostq.append");
  j.payload = file;
  for (int i = 0; i < kSamples; ++i) {
    ASSERT_TRUE(waitStats(pool_idle)) << "pool never idle";
    const JobId id = put(j);
    ASSERT_TRUE(waitUntil([&] { return appendLog(file).count(id) == 1; }, 30s)) << "job " << i << " never started";
  }
  EXPECT_EQ(appendLog(file).size(), static_cast<std::size_t>(kSamples));
}

}  // namespace
}  // namespace hostq::test
