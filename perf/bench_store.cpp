// Store throughput against a real PostgreSQL (HOSTQ_TEST_DATABASE_URL; skipped without it):
// bulk enqueue (COPY), reserve at batch sizes 1/10/100/1000, batched complete. Every benchmark
// runs in its own schema, dropped at the end. Target: bulk enqueue >= 100,000 jobs/s into an
// empty table.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "bench_database.hpp"
#include "store/store.hpp"

namespace {

using hostq::bench::databaseUrl;
using hostq::bench::skipWithoutDatabase;

/// A fresh migrated schema for one benchmark run; dropped on destruction.
struct Scratch {
  explicit Scratch(const std::string& name) {
    schema = "bench_" + name + "_" + std::to_string(::getpid());
    admin = hostq::Store::connect(databaseUrl());
    admin->exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema);
    hostq::StoreOptions o;
    o.schema = schema;
    o.application_name = "hostq-bench";
    store = hostq::Store::connect(databaseUrl(), o);
    store->migrate();
  }
  ~Scratch() {
    store.reset();
    admin->exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
  }
  std::string schema;
  std::unique_ptr<hostq::Store> admin;
  std::unique_ptr<hostq::Store> store;
};

std::vector<hostq::NewJob> plainJobs(std::size_t n) {
  hostq::NewJob j;
  j.tag = "BenchJob#perform";
  j.payload = "--- !ruby/object:BenchJob\nargs:\n- 42\n- some text to make the row realistic\n";
  return std::vector<hostq::NewJob>(n, j);
}

void BM_EnqueueBulk(benchmark::State& state) {
  if (skipWithoutDatabase(state)) return;
  Scratch db("bulk");
  const auto jobs = plainJobs(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    state.PauseTiming();
    db.store->exec("TRUNCATE delayed_jobs");  // "into an empty table"
    state.ResumeTiming();
    benchmark::DoNotOptimize(db.store->enqueueBulk(jobs));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_EnqueueBulk)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Reserve(benchmark::State& state) {
  if (skipWithoutDatabase(state)) return;
  Scratch db("reserve");
  const auto batch = static_cast<int>(state.range(0));
  hostq::ReserveRequest r;
  for (int i = 0; i < batch; ++i) r.worker_names.push_back("bench:" + std::to_string(i));
  std::int64_t reserved = 0;
  for (auto _ : state) {
    state.PauseTiming();
    db.store->exec("TRUNCATE delayed_jobs");
    db.store->enqueueBulk(plainJobs(static_cast<std::size_t>(batch) * 4));
    db.store->exec("ANALYZE delayed_jobs");
    state.ResumeTiming();
    for (int k = 0; k < 4; ++k) reserved += static_cast<std::int64_t>(db.store->reserve(r).assigned.size());
  }
  state.SetItemsProcessed(reserved);
  state.counters["statements/job"] =
      benchmark::Counter(static_cast<double>(state.iterations() * 4) / static_cast<double>(reserved));
}
BENCHMARK(BM_Reserve)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CompleteBatched(benchmark::State& state) {
  if (skipWithoutDatabase(state)) return;
  Scratch db("complete");
  const auto batch = static_cast<int>(state.range(0));
  hostq::ReserveRequest r;
  for (int i = 0; i < batch; ++i) r.worker_names.push_back("bench:" + std::to_string(i));
  std::int64_t completed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    db.store->enqueueBulk(plainJobs(static_cast<std::size_t>(batch)));
    std::vector<hostq::OwnedJob> owned;
    for (auto& [name, job] : db.store->reserve(r).assigned) owned.push_back({job.id, name});
    state.ResumeTiming();
    completed += static_cast<std::int64_t>(db.store->complete(owned).applied.size());
  }
  state.SetItemsProcessed(completed);
}
BENCHMARK(BM_CompleteBatched)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
