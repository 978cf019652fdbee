// Round trip worker -> server -> worker between processes (fork), closed loop, one request
// outstanding per worker: the shm data plane against a Unix socketpair, a bare futex
// ping-pong and the cache-line ping-pong floor, in one run so they share the machine's state.
//
// Each benchmark runs once per repetition (manual time = measured window); workers time every
// round trip with CLOCK_MONOTONIC (included in the figures, ~2 x 17 ns). Counters: req_per_s,
// p50_us / p99_us / p999_us over the round trips of all workers.
//
//   bench_shm --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//             --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "shm/adaptive_spin.hpp"
#include "shm/futex.hpp"
#include "shm/server_segment.hpp"
#include "shm/worker_segment.hpp"

namespace {

using namespace hostq::shm;
using hostq::monotonicNs;
using namespace std::chrono_literals;

constexpr std::size_t kRequestBytes = 64;
constexpr std::size_t kReplyBytes = 256;
constexpr std::uint64_t kWarmupNs = 100'000'000;
constexpr std::uint64_t kMeasureNs = 500'000'000;
constexpr std::size_t kMaxSamples = 1u << 20;  // per worker
constexpr int kMaxWorkers = 8;

// Shared between the bench process and its children (MAP_SHARED | MAP_ANONYMOUS before fork).
struct Control {
  std::atomic<std::uint32_t> go;    // futex word: 1 = start
  std::atomic<std::uint32_t> stop;  // server loops exit
  std::atomic<std::uint64_t> startNs;
  std::atomic<std::uint64_t> count[kMaxWorkers];
  std::atomic<std::uint32_t> errors;
  alignas(128) std::atomic<std::uint32_t> pingPong[32];  // word 0 and word 16: own lines
  std::uint32_t samples[kMaxWorkers][kMaxSamples];      // round trip ns
};

Control* mapControl() {
  void* p = ::mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  return new (p) Control{};
}

template <class F>
pid_t spawn(F&& f) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    f();
    ::_exit(0);
  }
  return pid;
}

void awaitGo(Control& c) {
  while (c.go.load(std::memory_order_acquire) == 0) futexWait(&c.go, 0, 10ms);
}

// The worker side of every transport: time round trips until the window closes.
template <class RoundTrip>
void measure(Control& c, int id, RoundTrip rt) {
  awaitGo(c);
  const std::uint64_t start = c.startNs.load();
  const std::uint64_t measureFrom = start + kWarmupNs, end = measureFrom + kMeasureNs;
  std::uint64_t n = 0;
  for (;;) {
    const std::uint64_t t0 = monotonicNs();
    if (t0 >= end) break;
    if (!rt()) {
      c.errors.fetch_add(1);
      break;
    }
    const std::uint64_t t1 = monotonicNs();
    if (t0 >= measureFrom) {
      if (n < kMaxSamples) c.samples[id][n] = static_cast<std::uint32_t>(std::min<std::uint64_t>(t1 - t0, UINT32_MAX));
      ++n;
    }
  }
  c.count[id].store(n);
}

void startAndReport(benchmark::State& state, Control& c, int workers, const std::vector<pid_t>& clients,
                    const std::vector<pid_t>& servers, const std::function<void()>& stopServers) {
  c.startNs.store(monotonicNs());
  c.go.store(1, std::memory_order_release);
  futexWake(&c.go, INT32_MAX);
  for (pid_t p : clients) ::waitpid(p, nullptr, 0);
  c.stop.store(1);
  stopServers();
  for (pid_t p : servers) ::waitpid(p, nullptr, 0);

  std::vector<std::uint32_t> all;
  std::uint64_t total = 0;
  for (int i = 0; i < workers; ++i) {
    const std::uint64_t n = c.count[i].load();
    total += n;
    all.insert(all.end(), c.samples[i], c.samples[i] + std::min<std::uint64_t>(n, kMaxSamples));
  }
  auto pct = [&](double q) {
    if (all.empty()) return 0.0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(all.size() - 1));
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
    return all[k] / 1000.0;
  };
  state.SetIterationTime(static_cast<double>(kMeasureNs) / 1e9);
  state.counters["req_per_s"] = static_cast<double>(total) / (static_cast<double>(kMeasureNs) / 1e9);
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["p999_us"] = pct(0.999);
  state.counters["errors"] = c.errors.load();
  if (c.errors.load() != 0) state.SkipWithError("round trip failed");
}

// ---- shm data plane
void BM_ShmRoundTrip(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  for (auto _ : state) {
    Control* c = mapControl();
    auto seg = ServerSegment::create(static_cast<std::uint32_t>(k));
    if (!c || !seg) {
      state.SkipWithError("setup failed");
      return;
    }
    std::vector<pid_t> clients;
    for (int i = 0; i < k; ++i) {
      int p[2];
      if (::pipe(p) != 0) return;
      const int fd = seg->fd();
      const std::uint64_t gen = seg->generation();
      const pid_t pid = spawn([&, i] {
        char ch;
        ::close(p[1]);
        if (::read(p[0], &ch, 1) != 1) return;
        auto w = WorkerSegment::attach(fd, static_cast<std::uint32_t>(i), gen);
        if (!w) {
          c->errors.fetch_add(1);
          return;
        }
        std::array<std::byte, kReplyPayloadMax> buf{};
        std::uint64_t seq = 0;
        measure(*c, i, [&] {
          std::memcpy(buf.data(), &seq, sizeof seq);
          if (w->pushRequest(std::span(buf.data(), kRequestBytes)) != PushResult::Ok) return false;
          std::size_t len = 0;
          PopResult r;
          while ((r = w->popReply(buf, len)) == PopResult::Empty)
            if (w->waitForReply(1s) != WaitOutcome::Ready) return false;
          std::uint64_t echoed = 0;
          std::memcpy(&echoed, buf.data(), sizeof echoed);
          return r == PopResult::Ok && len == kReplyBytes && echoed == seq++;
        });
      });
      ::close(p[0]);
      seg->resetSlot(static_cast<std::uint32_t>(i), pid);
      const char ch = 'g';
      if (::write(p[1], &ch, 1) != 1) c->errors.fetch_add(1);
      ::close(p[1]);
      clients.push_back(pid);
    }
    // The server is its own process too (forked after the slots were reset, so it inherits
    // the slot table); the bench process only orchestrates.
    const pid_t server = spawn([&] {
      std::array<std::byte, kReplyPayloadMax> in{}, out{};
      while (c->stop.load(std::memory_order_relaxed) == 0) {
        bool any = false;
        for (std::uint32_t s : seg->activeSlots()) {
          std::size_t len = 0;
          while (seg->popRequest(s, in, len) == PopResult::Ok) {
            any = true;
            std::memcpy(out.data(), in.data(), 8);
            if (seg->pushReply(s, std::span(out.data(), kReplyBytes)) != PushResult::Ok) c->errors.fetch_add(1);
          }
        }
        if (!any) (void)seg->waitForWork(100ms);
      }
    });
    startAndReport(state, *c, k, clients, {server}, [&] { seg->ringServerDoorbell(); });
    ::munmap(c, sizeof(Control));
  }
}

// ---- Unix socketpair, blocking, one server thread per connection (one server process)
bool readFull(int fd, void* p, std::size_t n) {
  auto* b = static_cast<char*>(p);
  while (n) {
    const ssize_t r = ::read(fd, b, n);
    if (r <= 0) return false;
    b += r, n -= static_cast<std::size_t>(r);
  }
  return true;
}
bool writeFull(int fd, const void* p, std::size_t n) {
  auto* b = static_cast<const char*>(p);
  while (n) {
    const ssize_t r = ::write(fd, b, n);
    if (r <= 0) return false;
    b += r, n -= static_cast<std::size_t>(r);
  }
  return true;
}

void BM_UdsRoundTrip(benchmark::State& state) {
  const int k = static_cast<int>(state.range(0));
  for (auto _ : state) {
    Control* c = mapControl();
    std::vector<std::array<int, 2>> sv(static_cast<std::size_t>(k));
    for (auto& s : sv)
      if (::socketpair(AF_UNIX, SOCK_STREAM, 0, s.data()) != 0) return;
    const pid_t server = spawn([&] {
      std::vector<std::thread> threads;
      for (auto& s : sv) {
        ::close(s[1]);
        threads.emplace_back([fd = s[0]] {
          std::array<char, kReplyBytes> out{};
          std::array<char, kRequestBytes> in{};
          while (readFull(fd, in.data(), in.size())) {
            std::memcpy(out.data(), in.data(), 8);
            if (!writeFull(fd, out.data(), out.size())) break;
          }
        });
      }
      for (auto& t : threads) t.join();
    });
    std::vector<pid_t> clients;
    for (int i = 0; i < k; ++i) {
      clients.push_back(spawn([&, i] {
        const int fd = sv[static_cast<std::size_t>(i)][1];
        std::array<char, kReplyBytes> buf{};
        std::uint64_t seq = 0;
        measure(*c, i, [&] {
          std::memcpy(buf.data(), &seq, 8);
          if (!writeFull(fd, buf.data(), kRequestBytes) || !readFull(fd, buf.data(), kReplyBytes)) return false;
          std::uint64_t echoed = 0;
          std::memcpy(&echoed, buf.data(), 8);
          return echoed == seq++;
        });
      }));
    }
    for (auto& s : sv) ::close(s[0]);
    startAndReport(state, *c, k, clients, {server}, [&] {
      for (auto& s : sv) ::close(s[1]);  // EOF ends the server threads
    });
    ::munmap(c, sizeof(Control));
  }
}

// ---- baselines, 2 processes: bare futex ping-pong (every hop sleeps) and the cache-line
// ping-pong floor (both sides spin).
template <bool kSpin>
void pingPong(benchmark::State& state) {
  for (auto _ : state) {
    Control* c = mapControl();
    auto* ping = &c->pingPong[0];
    auto* pong = &c->pingPong[16];
    auto waitFor = [](std::atomic<std::uint32_t>* w, std::uint32_t v, Control* ctl) {
      while (w->load(std::memory_order_acquire) != v) {
        if (ctl->stop.load(std::memory_order_relaxed)) return false;
        if (kSpin) {
          cpuRelax();
        } else {
          const std::uint32_t seen = w->load(std::memory_order_acquire);
          if (seen != v) futexWait(w, seen, 100ms);
        }
      }
      return true;
    };
    const pid_t server = spawn([&] {
      for (std::uint32_t i = 1;; ++i) {
        if (!waitFor(ping, i, c)) return;
        pong->store(i, std::memory_order_release);
        if (!kSpin) futexWake(pong, 1);
      }
    });
    const pid_t client = spawn([&] {
      std::uint32_t i = 0;
      measure(*c, 0, [&] {
        ++i;
        ping->store(i, std::memory_order_release);
        if (!kSpin) futexWake(ping, 1);
        return waitFor(pong, i, c);
      });
    });
    startAndReport(state, *c, 1, {client}, {server}, [&] {
      ping->fetch_add(1 << 30);
      futexWake(ping, 1);
    });
    ::munmap(c, sizeof(Control));
  }
}
void BM_FutexPingPong(benchmark::State& state) { pingPong<false>(state); }
void BM_CacheLinePingPong(benchmark::State& state) { pingPong<true>(state); }

}  // namespace

BENCHMARK(BM_CacheLinePingPong)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FutexPingPong)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ShmRoundTrip)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UdsRoundTrip)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
