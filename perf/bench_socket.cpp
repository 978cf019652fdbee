// One job hand-off over the control socket, in one process: the client sends Reserve, the
// server's io thread decodes it and answers JobAssigned (100 B payload), the client decodes it
// and sends Complete. Isolates the socket transport (syscalls, Asio, codec, two thread wake-ups)
// from the database and the reserver; compare with bench_shm's Shm K=1.
//   build-X/perf/bench_socket --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <variant>

#include "control/control_client.hpp"
#include "control/control_server.hpp"

namespace {

using namespace hostq;
using namespace std::chrono_literals;

// Answers every Reserve at once, from the io thread (the real server hops to its loop thread
// first: that hop is not in this figure).
class EchoHandler : public control::ControlHandler {
 public:
  control::ControlServer* server = nullptr;
  std::string worker;
  std::atomic<std::uint64_t> completes{0};
  void onHello(control::ConnId id, protocol::Hello hello, control::PeerCred) override {
    worker = hello.name;
    server->acceptHello(id, protocol::HelloOk{std::nullopt, 1, static_cast<std::int32_t>(::getpid())});
  }
  void onMessage(control::ConnId id, protocol::Message m) override {
    if (auto* r = std::get_if<protocol::Reserve>(&m)) {
      protocol::JobAssigned j;
      j.id = static_cast<JobId>(r->request_seq);
      j.tag = "hostq.noop";
      j.payload = std::string(100, 'p');
      j.queue = "queue";
      j.locked_by = worker;
      j.request_seq = r->request_seq;
      server->send(id, std::move(j));
    } else if (std::holds_alternative<protocol::Complete>(m)) {
      completes.fetch_add(1, std::memory_order_relaxed);
    }
  }
  void onDisconnect(control::ConnId, std::string) override {}
};

void BM_SocketHandoff(benchmark::State& state) {
  const auto dir = std::filesystem::temp_directory_path() / ("hostq-bench-socket-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
  EchoHandler handler;
  control::ControlServerOptions so;
  so.socket_path = (dir / "s.sock").string();
  control::ControlServer server(so, handler);
  handler.server = &server;
  server.start();

  control::ControlClient client;
  if (!client.connect(so.socket_path, 2s).ok()) {
    state.SkipWithError("connect failed");
    return;
  }
  protocol::Hello h;
  h.name = "bench:" + std::to_string(::getpid());
  h.pid = static_cast<std::int32_t>(::getpid());
  h.transport = protocol::Transport::Socket;
  if (!client.hello(h, 2s).ok()) {
    state.SkipWithError("hello failed");
    return;
  }
  std::uint64_t seq = 0;
  for (auto _ : state) {
    ++seq;
    (void)client.send(protocol::Reserve{seq, 0});
    auto rec = client.receive(2s);
    if (rec.kind != control::ControlClient::Received::Kind::Message) {
      state.SkipWithError("no JobAssigned");
      break;
    }
    (void)client.send(protocol::Complete{static_cast<JobId>(seq), seq});
  }
  state.SetItemsProcessed(state.iterations());
  (void)client.send(protocol::Goodbye{});
  client.close();
  server.stop();
  std::filesystem::remove_all(dir);
}

BENCHMARK(BM_SocketHandoff)->UseRealTime()->MinTime(0.5);

}  // namespace

BENCHMARK_MAIN();
