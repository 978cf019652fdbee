// Frame codec cost of the three messages on every job's path (Reserve → JobAssigned → Complete),
// without any transport: what one hand-off spends in encode/decode on each side.
//   build-X/perf/bench_frame --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <string>

#include "protocol/codec.hpp"
#include "protocol/messages.hpp"

namespace {

using namespace hostq::protocol;

Message reserveMsg() { return Reserve{12345, 987654321}; }
Message completeMsg() { return Complete{1234567, 42}; }
Message assignedMsg() {
  JobAssigned j;
  j.id = 1234567;
  j.tag = "hostq.noop";
  j.payload = std::string(100, 'p');
  j.attempts = 0;
  j.max_attempts = 1;
  j.priority = 10;
  j.queue = "queue";
  j.run_at_us = 1'700'000'000'000'000;
  j.created_at_us = 1'700'000'000'000'000;
  j.locked_by = "host:12345";
  j.request_seq = 12345;
  return j;
}

// encodeInto a preallocated buffer: the shm ring path (no allocation).
void BM_EncodeInto(benchmark::State& state, Message (*make)()) {
  const Message m = make();
  std::array<std::byte, 4096> buf{};
  for (auto _ : state) {
    auto r = encodeInto(m, buf);
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  state.counters["bytes"] = static_cast<double>(encodedSize(m));
}

// encode() into a fresh vector: the socket path's allocation included.
void BM_EncodeAlloc(benchmark::State& state, Message (*make)()) {
  const Message m = make();
  for (auto _ : state) {
    auto r = encode(m);
    benchmark::DoNotOptimize(r);
  }
}

// Validating decode of one whole frame into a Message (strings of JobAssigned allocate).
void BM_Decode(benchmark::State& state, Message (*make)()) {
  const auto bytes = encode(make()).value();
  for (auto _ : state) {
    auto r = decode(bytes);
    benchmark::DoNotOptimize(r);
  }
}

BENCHMARK_CAPTURE(BM_EncodeInto, Reserve, reserveMsg);
BENCHMARK_CAPTURE(BM_EncodeInto, Complete, completeMsg);
BENCHMARK_CAPTURE(BM_EncodeInto, JobAssigned100B, assignedMsg);
BENCHMARK_CAPTURE(BM_EncodeAlloc, Reserve, reserveMsg);
BENCHMARK_CAPTURE(BM_EncodeAlloc, JobAssigned100B, assignedMsg);
BENCHMARK_CAPTURE(BM_Decode, Reserve, reserveMsg);
BENCHMARK_CAPTURE(BM_Decode, Complete, completeMsg);
BENCHMARK_CAPTURE(BM_Decode, JobAssigned100B, assignedMsg);

}  // namespace

BENCHMARK_MAIN();
