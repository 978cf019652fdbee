// The server's two headline figures, measured on a real `hostq server` with real `hostq worker`
// processes (the binary: HOSTQ_BIN, else this build tree's) against a real PostgreSQL
// (HOSTQ_TEST_DATABASE_URL; skipped without it). They were speed bounds in the functional suite,
// where a loaded machine made them flake; the functional tests now check that the work gets done.
//   BM_BurnDownStatementsPerJob  10,000 no-op jobs on 4 workers. Target: statements_per_job
//                                <= 0.05 (results written in batches, one reservation serving
//                                many requests).
//   BM_EnqueueToStartIdle        enqueue → the job's line in its append file, on an idle pool of
//                                2 workers. Target: p50_ms <= 10.
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_database.hpp"
#include "store/store.hpp"
#include "support/farm.hpp"
#include "support/server_harness.hpp"
#include "support/wait.hpp"

namespace {

using hostq::bench::databaseUrl;
using hostq::bench::skipWithoutDatabase;

using namespace std::chrono_literals;
using hostq::test::HostqProcess;
using hostq::test::statNumber;

/// A migrated schema, a socket and a host name of its own and a server; workers on demand. The
/// schema is dropped at the end.
class Farm {
 public:
  Farm(const std::string& name, const std::vector<std::string>& server_flags) {
    m_schema = "bench_" + name + "_" + std::to_string(::getpid());
    m_admin = hostq::Store::connect(databaseUrl());
    m_admin->exec("DROP SCHEMA IF EXISTS " + m_schema + " CASCADE; CREATE SCHEMA " + m_schema);
    hostq::StoreOptions o;
    o.schema = m_schema;
    store = hostq::Store::connect(databaseUrl(), o);
    store->migrate();
    m_socket = m_dir.file("hq.sock");
    m_host = "bench" + std::to_string(::getpid());
    std::vector<std::string> args{"server", "--database-url", databaseUrl(), "--schema", m_schema,
                                  "--socket", m_socket, "--hostname", m_host};
    args.insert(args.end(), server_flags.begin(), server_flags.end());
    m_server = HostqProcess(args, m_dir.file("server.log"));
    monitor = std::make_unique<hostq::test::Monitor>(m_socket);
    if (!hostq::test::waitUntil([&] { return monitor->stats(500ms).has_value(); }, 10s))
      throw std::runtime_error("the server did not come up:\n" + m_server.log());
  }
  ~Farm() {
    m_workers.clear();
    m_server = HostqProcess();
    monitor.reset();
    store.reset();
    m_admin->exec("DROP SCHEMA IF EXISTS " + m_schema + " CASCADE");
  }
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  void startWorkers(int n) {
    for (int i = 0; i < n; ++i)
      m_workers.emplace_back(std::vector<std::string>{"worker", "--builtin-handlers", "--socket", m_socket, "--schema",
                                                      m_schema, "--hostname", m_host, "--database-url", databaseUrl()},
                             m_dir.file("worker-" + std::to_string(m_workers.size()) + ".log"));
  }
  /// Polls stats until `pred` holds (false after `timeout`); `json` gets the last reading.
  bool waitStats(const std::function<bool(const std::string&)>& pred, std::string& json,
                 std::chrono::milliseconds timeout) {
    return hostq::test::waitUntil([&] {
      auto s = monitor->stats();
      if (!s) return false;
      json = *s;
      return pred(json);
    }, timeout);
  }
  std::string file(const std::string& name) const { return m_dir.file(name); }

  std::unique_ptr<hostq::Store> store;
  std::unique_ptr<hostq::test::Monitor> monitor;

 private:
  hostq::test::ScratchDir m_dir;
  std::string m_schema, m_socket, m_host;
  std::unique_ptr<hostq::Store> m_admin;
  HostqProcess m_server;
  std::vector<HostqProcess> m_workers;
};

void BM_BurnDownStatementsPerJob(benchmark::State& state) {
  if (skipWithoutDatabase(state)) return;
  const auto jobs = static_cast<double>(state.range(0));
  double statements = 0, completed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // The default poll interval: the empty safety-net polls after the burn-down count too.
    Farm farm("burn", {"--poll-interval", "1s"});
    hostq::NewJob noop;
    noop.tag = "hostq.noop";
    farm.store->enqueueBulk(std::vector<hostq::NewJob>(static_cast<std::size_t>(state.range(0)), noop));
    state.ResumeTiming();
    farm.startWorkers(4);
    std::string s;
    if (!farm.waitStats([&](const std::string& j) { return statNumber(j, "jobs_completed") == jobs; }, s, 120s)) {
      state.SkipWithError(("the burn-down did not finish: " + s).c_str());
      return;
    }
    state.PauseTiming();
    statements += statNumber(s, "db_statements").value_or(0);
    completed += jobs;
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(completed));
  state.counters["statements_per_job"] = benchmark::Counter(completed > 0 ? statements / completed : 0);
}
BENCHMARK(BM_BurnDownStatementsPerJob)->Arg(10'000)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_EnqueueToStartIdle(benchmark::State& state) {
  if (skipWithoutDatabase(state)) return;
  constexpr int kWorkers = 2;
  Farm farm("latency", {});
  farm.startWorkers(kWorkers);
  const std::string file = farm.file("ran");
  auto size_of = [&] {
    struct stat st{};
    return ::stat(file.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : 0L;
  };
  auto idle = [&](const std::string& s) {
    return statNumber(s, "workers_waiting") == kWorkers && hostq::test::statFlag(s, "drained");
  };
  hostq::NewJob j;
  j.tag = "hostq.append";
  j.payload = file;
  std::vector<double> ms;
  for (auto _ : state) {
    state.PauseTiming();
    std::string s;
    if (!farm.waitStats(idle, s, 10s)) {
      state.SkipWithError("the pool never went idle");
      return;
    }
    const long before = size_of();
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    farm.store->enqueue(j);
    // A tight poll: this measures, so its granularity must be far below the figure.
    while (size_of() == before) {
      if (std::chrono::steady_clock::now() - t0 > 10s) {
        state.SkipWithError("a job never started");
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  if (ms.empty()) return;
  state.counters["p50_ms"] = ms[ms.size() / 2];
  state.counters["p90_ms"] = ms[ms.size() * 9 / 10];
  state.counters["max_ms"] = ms.back();
}
BENCHMARK(BM_EnqueueToStartIdle)->Iterations(50)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
