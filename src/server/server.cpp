#include "server/server.hpp"

#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <variant>

#include "common/json.hpp"
#include "common/process_probe.hpp"
#include "control/control_server.hpp"
#include "hostq/store.hpp"
#include "http/http_server.hpp"
#include "protocol/codec.hpp"
#include "protocol/job_convert.hpp"
#include "server/host_monitor.hpp"
#include "server/idle_hook.hpp"
#include "server/reserver.hpp"
#include "server/result_writer.hpp"
#include "server/stats_snapshot.hpp"
#include "shm/server_segment.hpp"

namespace hostq::server {

namespace {

std::atomic<bool> g_exit{false};
std::atomic<const shm::ServerDoorbell*> g_doorbell{nullptr};

extern "C" void onServerSignal(int) {
  g_exit.store(true);
  if (auto* d = g_doorbell.load()) d->ring();
}

std::uint64_t monoNowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// What the control thread hands the loop thread.
struct Event {
  enum class Kind { Hello, Message, Disconnect } kind;
  control::ConnId conn = 0;
  std::optional<protocol::Hello> hello;
  control::PeerCred peer;
  std::optional<protocol::Message> message;
  std::string reason;
};

class Server final : public control::ControlHandler, public ReserverSink {
 public:
  explicit Server(const ServerOptions& o) : m_o(o), m_idleHook(o.settings.idle_hook) {}

  int run();

  // --- control thread ---------------------------------------------------------------------
  void onHello(control::ConnId id, protocol::Hello hello, control::PeerCred peer) override {
    Event e{Event::Kind::Hello, id, std::move(hello), peer, std::nullopt, {}};
    post(std::move(e));
  }
  void onMessage(control::ConnId id, protocol::Message message) override {
    Event e{Event::Kind::Message, id, std::nullopt, {}, std::move(message), {}};
    post(std::move(e));
  }
  void onDisconnect(control::ConnId id, std::string reason) override {
    Event e{Event::Kind::Disconnect, id, std::nullopt, {}, std::nullopt, std::move(reason)};
    post(std::move(e));
  }

  // --- ReserverSink (loop thread) ----------------------------------------------------------
  bool deliver(ClientId client, const Job& job, std::uint64_t request_seq) override;
  void acknowledge(ClientId client, const std::vector<JobId>& jobs) override;

 private:
  struct Conn {
    bool registered = false;
    ClientId client = 0;
    std::optional<std::uint32_t> slot;
    std::string name;
    bool goodbye = false;
    bool monitor = false;  ///< `hostq stats` / `wait-idle`: asks for stats, never for jobs
    pid_t pid = 0;         ///< from SO_PEERCRED
    std::optional<ProcessIdentity> process;  ///< the peer at Hello, to tell it alive from a reused pid
    WorkerConfig config;
    /// Payloads too large for the ring, kept until the worker fetches them.
    std::unordered_map<JobId, std::string> parked_payloads;
  };

  void post(Event e) {
    {
      std::lock_guard lock(m_inboxMutex);
      m_inbox.push_back(std::move(e));
      m_inboxPending.store(true, std::memory_order_release);
    }
    m_segment->ringServerDoorbell();
  }

  bool drainInbox();
  bool scanSlots();
  void handleHello(control::ConnId id, protocol::Hello& hello, const control::PeerCred& peer);
  void handleMessage(control::ConnId id, Conn& conn, protocol::Message& m, bool via_ring);
  void disconnect(control::ConnId id, const std::string& reason);
  void dropWorker(control::ConnId id, const std::string& reason);
  /// Detached clients whose process died or whose grace ran out lose their jobs.
  void expireDetached(SteadyClock::time_point now);
  /// `ask_database`: whether "drained" may check the queues in the database (a socket stats
  /// request, which wait-idle relies on) or must do with what the loop knows (HTTP snapshots).
  std::shared_ptr<StatsSnapshot> takeSnapshot(bool ask_database);
  std::string statsJson() { return dumpJson(server::statsJson(*takeSnapshot(true))); }
  /// With the HTTP endpoint on: the snapshot it serves, at most this old.
  void publishStats(SteadyClock::time_point now);
  bool startHttp();
  void listenLoop();

  ServerOptions m_o;
  IdleHook m_idleHook;
  std::string m_host;
  std::unique_ptr<Store> m_store;
  std::optional<shm::ServerSegment> m_segment;
  std::unique_ptr<control::ControlServer> m_control;
  std::unique_ptr<ResultWriter> m_writer;
  std::unique_ptr<ReservationRunner> m_reservations;
  std::vector<std::unique_ptr<BatchChannel>> m_channels;
  std::unique_ptr<Reserver> m_reserver;
  std::unique_ptr<HostMonitor> m_monitor;
  std::atomic<bool> m_declaredDead{false};
  ServerStats m_stats;
  StatsBoard m_statsBoard;
  std::unique_ptr<http::HttpServer> m_http;
  SteadyClock::time_point m_nextPublish{};

  std::mutex m_inboxMutex;
  /// Set (release) with every post, cleared by drainInbox: the loop's fast path skips the mutex.
  std::atomic<bool> m_inboxPending{false};
  std::vector<std::uint32_t> m_scanSlots;  ///< scanSlots' copy of the active list, reused
  std::size_t m_scanStart = 0;             ///< rotates, so no slot is always read first
  std::vector<Event> m_inbox;
  std::vector<Event> m_inboxWork;

  std::unordered_map<control::ConnId, Conn> m_conns;
  std::vector<control::ConnId> m_clientConn;   ///< ClientId → ConnId
  std::vector<control::ConnId> m_slotConn;     ///< slot → ConnId (0 = free)
  std::deque<std::uint32_t> m_freeSlots;       ///< FIFO, so a just-released slot is reused last
  /// Clients of live workers whose connection went away (Reserver::detachClient).
  struct Detached {
    ClientId client;
    std::string name;
    pid_t pid;
    ProcessIdentity process;
    WorkerConfig config;
    SteadyClock::time_point deadline;
  };
  std::vector<Detached> m_detached;
  SteadyClock::time_point m_nextDetachCheck{};
  std::vector<std::byte> m_buf;

  std::atomic<bool> m_notified{false};
  std::atomic<bool> m_listenStop{false};
  std::thread m_listener;
  bool m_wasIdle = true;
};

bool Server::deliver(ClientId client, const Job& job, std::uint64_t request_seq) {
  if (client >= m_clientConn.size()) return false;
  const control::ConnId id = m_clientConn[client];
  auto it = m_conns.find(id);
  if (it == m_conns.end()) return false;
  Conn& conn = it->second;
  protocol::Message msg = protocol::toJobAssigned(job, request_seq);
  if (conn.slot) {
    auto enc = protocol::encodeInto(msg, std::span<std::byte>(m_buf.data(), shm::kReplyPayloadMax));
    if (!enc.ok()) {
      // Too large for a ring record: the ring says "fetch over the socket".
      auto& a = std::get<protocol::JobAssigned>(msg);
      conn.parked_payloads[job.id] = std::move(a.payload);
      a.payload.clear();
      a.payload_omitted = true;
      enc = protocol::encodeInto(msg, std::span<std::byte>(m_buf.data(), shm::kReplyPayloadMax));
    }
    if (enc.ok()) {
      switch (m_segment->pushReply(*conn.slot, std::span<const std::byte>(m_buf.data(), enc.value()))) {
        case shm::PushResult::Ok: return true;
        case shm::PushResult::Full:
        case shm::PushResult::TooLarge: break;  // fall back to the socket below
        case shm::PushResult::Corrupt:
        case shm::PushResult::Closed:
          dropWorker(id, "reply ring corrupt or closed");
          return false;
      }
      auto& a = std::get<protocol::JobAssigned>(msg);
      if (a.payload_omitted) {
        a.payload = std::move(conn.parked_payloads[job.id]);
        conn.parked_payloads.erase(job.id);
        a.payload_omitted = false;
      }
    }
  }
  m_control->send(id, std::move(msg));
  return true;
}

void Server::acknowledge(ClientId client, const std::vector<JobId>& jobs) {
  if (client >= m_clientConn.size()) return;
  const control::ConnId id = m_clientConn[client];
  auto it = m_conns.find(id);
  if (it == m_conns.end()) return;
  Conn& conn = it->second;
  for (JobId j : jobs) conn.parked_payloads.erase(j);
  if (conn.slot) {
    // Acks are small; chunk them to fit one ring record each.
    constexpr std::size_t kPerRecord = 96;
    for (std::size_t i = 0; i < jobs.size(); i += kPerRecord) {
      protocol::ResultAck ack;
      ack.job_ids.assign(jobs.begin() + static_cast<std::ptrdiff_t>(i),
                         jobs.begin() + static_cast<std::ptrdiff_t>(std::min(jobs.size(), i + kPerRecord)));
      auto enc = protocol::encodeInto(protocol::Message(ack), std::span<std::byte>(m_buf.data(), shm::kReplyPayloadMax));
      if (enc.ok() && m_segment->pushReply(*conn.slot, std::span<const std::byte>(m_buf.data(), enc.value())) ==
                          shm::PushResult::Ok)
        continue;
      m_control->send(id, protocol::Message(std::move(ack)));
    }
    return;
  }
  m_control->send(id, protocol::Message(protocol::ResultAck{jobs}));
}

void Server::handleHello(control::ConnId id, protocol::Hello& hello, const control::PeerCred& peer) {
  auto refuse = [&](const std::string& why) {
    spdlog::warn("refusing worker {} (pid {}): {}", hello.name, peer.pid, why);
    m_control->refuse(id, why);
    m_conns.erase(id);
  };
  if (hello.name.empty() || hello.name.size() > 255) return refuse("bad worker name");
  if (hello.config.queue.empty()) return refuse("blank queue");
  if (hello.config.min_priority < kMinPriority || hello.config.max_priority > kMaxPriority ||
      hello.config.min_priority > hello.config.max_priority)
    return refuse("priority range outside 0..1000000");
  if (hello.name.rfind("monitor:", 0) == 0) {
    Conn& mon = m_conns[id];
    mon.name = hello.name;
    mon.registered = true;
    mon.monitor = true;
    protocol::HelloOk ok;
    ok.generation = m_segment->generation();
    ok.server_pid = ::getpid();
    m_control->acceptHello(id, ok, -1);
    return;
  }
  for (auto& [cid, c] : m_conns) {
    if (!c.registered || c.name != hello.name) continue;
    if (c.pid != peer.pid) return refuse("worker name " + hello.name + " already connected");
    // The same process again: it gave up on its old connection (e.g. its segment went bad)
    // before we saw that connection close. The new one wins; the old one's EOF will find nothing.
    const control::ConnId old = cid;
    disconnect(old, "replaced by a new connection from the same process");
    m_control->close(old, "replaced by a new connection");
    break;
  }
  Conn& conn = m_conns[id];
  conn.name = hello.name;
  conn.pid = peer.pid;
  conn.process = probeProcess(peer.pid);
  conn.config = hello.config;
  protocol::HelloOk ok;
  ok.generation = m_segment->generation();
  ok.server_pid = ::getpid();
  const bool wants_shm = hello.transport == protocol::Transport::Shm;
  if (wants_shm && !m_freeSlots.empty()) {
    const std::uint32_t slot = m_freeSlots.front();
    m_freeSlots.pop_front();
    m_segment->resetSlot(slot, peer.pid);
    m_slotConn[slot] = id;
    conn.slot = slot;
    ok.slot = slot;
  }
  const Transport t = conn.slot ? Transport::Shm : Transport::Socket;
  auto back = std::find_if(m_detached.begin(), m_detached.end(), [&](const Detached& d) {
    return d.name == hello.name && d.pid == peer.pid && conn.process &&
           d.process.start_ticks == conn.process->start_ticks;
  });
  if (back != m_detached.end() && back->config == hello.config) {
    conn.client = back->client;
    m_reserver->reattachClient(conn.client, t);
    spdlog::info("worker {} registered again; it keeps its {} job(s)", hello.name, m_reserver->jobsHeld(conn.client));
    m_detached.erase(back);
  } else {
    if (back != m_detached.end()) {
      m_reserver->removeClient(back->client, true);
      m_detached.erase(back);
    }
    conn.client = m_reserver->addClient(hello.name, hello.pid, hello.config, t);
  }
  conn.registered = true;
  if (m_clientConn.size() <= conn.client) m_clientConn.resize(conn.client + 1);
  m_clientConn[conn.client] = id;
  m_control->acceptHello(id, ok, conn.slot ? m_segment->fd() : -1);
  spdlog::debug("worker {} registered ({}{})", hello.name, conn.slot ? "shm slot " : "socket",
                conn.slot ? std::to_string(*conn.slot) : std::string());
}

void Server::handleMessage(control::ConnId id, Conn& conn, protocol::Message& m, bool via_ring) {
  const auto now = SteadyClock::now();
  if (conn.monitor) {
    if (std::holds_alternative<protocol::StatsRequest>(m))
      m_control->send(id, protocol::Message(protocol::StatsReply{statsJson()}));
    else if (!std::holds_alternative<protocol::Goodbye>(m) && !std::holds_alternative<protocol::Heartbeat>(m))
      dropWorker(id, "a monitor connection may only ask for stats");
    return;
  }
  if (auto* r = std::get_if<protocol::Reserve>(&m)) {
    // The worker's monotonic clock is the same as ours (one host), so the hand-off latency
    // covers the trip through the ring or socket too.
    SteadyClock::time_point at = now;
    const auto mono = monoNowNs();
    if (r->request_mono_ns > 0 && static_cast<std::uint64_t>(r->request_mono_ns) <= mono &&
        mono - static_cast<std::uint64_t>(r->request_mono_ns) < 60'000'000'000ull)
      at = now - std::chrono::nanoseconds(mono - static_cast<std::uint64_t>(r->request_mono_ns));
    m_reserver->requestJob(conn.client, r->request_seq, at);
  } else if (auto* c = std::get_if<protocol::Complete>(&m)) {
    m_reserver->reportResult(conn.client, JobResult{c->job_id, true, {}, std::nullopt, true, false});
  } else if (auto* f = std::get_if<protocol::Fail>(&m)) {
    JobResult jr{f->job_id, false, f->error, std::nullopt, f->count_attempt, f->permanent};
    if (f->run_at_us != 0) jr.run_at = TimePoint{std::chrono::microseconds{f->run_at_us}};
    m_reserver->reportResult(conn.client, jr);
  } else if (std::holds_alternative<protocol::Heartbeat>(m)) {
  } else if (auto* fp = std::get_if<protocol::FetchPayload>(&m)) {
    auto it = conn.parked_payloads.find(fp->job_id);
    if (it == conn.parked_payloads.end()) return dropWorker(id, "fetch of a payload it was not given");
    m_control->send(id, protocol::Message(protocol::Payload{fp->job_id, std::move(it->second)}));
    conn.parked_payloads.erase(it);
  } else if (std::holds_alternative<protocol::StatsRequest>(m)) {
    m_control->send(id, protocol::Message(protocol::StatsReply{statsJson()}));
  } else if (std::holds_alternative<protocol::Goodbye>(m)) {
    conn.goodbye = true;
  } else {
    dropWorker(id, std::string("unexpected ") + protocol::typeName(protocol::typeOf(m)) +
                       (via_ring ? " in ring" : " on socket"));
  }
}

void Server::dropWorker(control::ConnId id, const std::string& reason) {
  ++m_stats.workers_dropped;
  auto it = m_conns.find(id);
  if (it != m_conns.end() && it->second.slot) {
    m_segment->releaseSlot(*it->second.slot);
  }
  spdlog::warn("dropping worker {}: {}", it != m_conns.end() ? it->second.name : "?", reason);
  m_control->close(id, reason);  // onDisconnect follows and finishes the clean-up
}

void Server::expireDetached(SteadyClock::time_point now) {
  if (m_detached.empty() || now < m_nextDetachCheck) return;
  m_nextDetachCheck = now + std::chrono::milliseconds(100);
  for (auto it = m_detached.begin(); it != m_detached.end();) {
    const bool alive = stillRunning(it->pid, it->process);
    if (alive && now < it->deadline) {
      ++it;
      continue;
    }
    spdlog::warn("worker {} {}: its jobs are rescheduled", it->name,
                 alive ? "did not register again within reconnect_grace" : "died while disconnected");
    m_reserver->removeClient(it->client, true);
    it = m_detached.erase(it);
  }
}

void Server::disconnect(control::ConnId id, const std::string& reason) {
  auto it = m_conns.find(id);
  if (it == m_conns.end()) return;
  Conn& conn = it->second;
  if (conn.slot && conn.registered && !conn.monitor && m_segment->isActive(*conn.slot)) {
    // What the worker wrote into its ring before it went away is still there: results it
    // reported must be written, not turned into "process died" reschedules (and reruns).
    for (int n = 0; n < 256; ++n) {
      std::size_t len = 0;
      if (m_segment->popRequest(*conn.slot, std::span<std::byte>(m_buf.data(), m_buf.size()), len) !=
          shm::PopResult::Ok)
        break;
      auto msg = protocol::decode(std::span<const std::byte>(m_buf.data(), len));
      if (!msg.ok()) break;
      if (std::holds_alternative<protocol::Complete>(msg.value()) ||
          std::holds_alternative<protocol::Fail>(msg.value()) ||
          std::holds_alternative<protocol::Goodbye>(msg.value()))
        handleMessage(id, conn, msg.value(), true);
    }
  }
  if (conn.registered && !conn.monitor) {
    const bool died = !conn.goodbye;
    if (died && m_reserver->holdsAnything(conn.client) && conn.process && stillRunning(conn.pid, *conn.process)) {
      // The process lives on (we dropped it, or it gave up on this connection): what it ran it
      // will report after registering again. Rescheduling now would run those jobs twice.
      spdlog::info("worker {} disconnected ({}) but pid {} is alive: keeping its {} job(s) for {} ms", conn.name,
                   reason, conn.pid, m_reserver->jobsHeld(conn.client), m_o.settings.reconnect_grace.count());
      m_reserver->detachClient(conn.client);
      m_detached.push_back(Detached{conn.client, conn.name, conn.pid, *conn.process, conn.config,
                                    SteadyClock::now() + m_o.settings.reconnect_grace});
    } else {
      if (died) spdlog::info("worker {} disconnected: {}", conn.name, reason);
      m_reserver->removeClient(conn.client, died);
    }
  }
  if (conn.slot) {
    m_segment->releaseSlot(*conn.slot);
    m_slotConn[*conn.slot] = 0;
    m_freeSlots.push_back(*conn.slot);
  }
  m_conns.erase(it);
}

bool Server::drainInbox() {
  if (!m_inboxPending.load(std::memory_order_acquire)) return false;
  {
    std::lock_guard lock(m_inboxMutex);
    m_inboxPending.store(false, std::memory_order_relaxed);
    if (m_inbox.empty()) return false;
    m_inboxWork.swap(m_inbox);
  }
  for (auto& e : m_inboxWork) {
    switch (e.kind) {
      case Event::Kind::Hello:
        handleHello(e.conn, *e.hello, e.peer);
        break;
      case Event::Kind::Message: {
        auto it = m_conns.find(e.conn);
        if (it == m_conns.end()) break;  // refused or already dropped
        if (!it->second.registered) {
          // StatsRequest from the CLI arrives after a Hello; anything else before registration
          // is a protocol error.
          dropWorker(e.conn, "message before registration");
          break;
        }
        handleMessage(e.conn, it->second, *e.message, false);
        break;
      }
      case Event::Kind::Disconnect:
        disconnect(e.conn, e.reason);
        break;
    }
  }
  m_inboxWork.clear();
  return true;
}

bool Server::scanSlots() {
  bool did = false;
  // Copy: handling a request may release a slot and change the active list.
  const auto active = m_segment->activeSlots();
  // Starting each pass one slot further on: requests enter the waiting FIFO in the order they
  // are read, so a fixed order served low slots first whenever prefetched jobs ran short (256
  // workers: 2.8x between the busiest and the idlest worker over shm, 1.14x over the socket).
  m_scanSlots.clear();
  if (!active.empty()) {
    const std::size_t n = active.size();
    m_scanStart = (m_scanStart + 1) % n;
    for (std::size_t k = 0; k < n; ++k) m_scanSlots.push_back(active[(m_scanStart + k) % n]);
  }
  for (std::uint32_t slot : m_scanSlots) {
    const control::ConnId id = slot < m_slotConn.size() ? m_slotConn[slot] : 0;
    for (int n = 0; n < 64; ++n) {  // bounded per slot per pass: no worker starves the others
      std::size_t len = 0;
      const auto r = m_segment->popRequest(slot, std::span<std::byte>(m_buf.data(), m_buf.size()), len);
      if (r == shm::PopResult::Empty) break;
      if (r != shm::PopResult::Ok) {
        if (id) dropWorker(id, "request ring corrupt");
        else m_segment->releaseSlot(slot);
        break;
      }
      did = true;
      auto it = m_conns.find(id);
      if (it == m_conns.end() || !it->second.registered) break;
      auto msg = protocol::decode(std::span<const std::byte>(m_buf.data(), len));
      if (!msg.ok()) {
        dropWorker(id, "bad request record: " + msg.error().describe());
        break;
      }
      const auto type = protocol::typeOf(msg.value());
      if (!protocol::isWorkerToServer(type) || type == protocol::MessageType::Hello) {
        dropWorker(id, std::string("unexpected ") + protocol::typeName(type) + " in ring");
        break;
      }
      handleMessage(id, it->second, msg.value(), true);
      if (!m_segment->isActive(slot)) break;
    }
  }
  return did;
}

std::shared_ptr<StatsSnapshot> Server::takeSnapshot(bool ask_database) {
  auto snap = std::make_shared<StatsSnapshot>();
  snap->server_pid = ::getpid();
  snap->host = m_host;
  snap->generation = m_segment->generation();
  if (m_http) snap->http = m_http->address();
  for (auto& c : m_reserver->clients())
    snap->workers.push_back(WorkerSnapshot{c.name, c.pid, c.transport, c.state, c.jobs_done, c.current_job});
  m_reserver->refreshIdle();
  snap->idle = m_reserver->idle();
  snap->drained = ask_database ? m_reserver->drained() : m_reserver->drainedAsKnown();
  snap->database_up = m_reserver->databaseUp();
  snap->prefetched = m_reserver->prefetchedCount();
  snap->results_pending = m_reserver->pendingResults();
  snap->held_channels = m_channels.size();
  snap->held_in_use = m_reserver->batchesInUse();
  snap->stats = m_stats;
  snap->taken_at = SteadyClock::now();
  return snap;
}

void Server::publishStats(SteadyClock::time_point now) {
  if (!m_http || now < m_nextPublish) return;
  m_nextPublish = now + std::chrono::milliseconds(250);
  m_statsBoard.publish(takeSnapshot(false));
}

bool Server::startHttp() {
  if (m_o.settings.http_listen.empty()) return true;
  http::HttpOptions ho;
  ho.listen = *http::parseListenAddress(m_o.settings.http_listen);  // checked with the settings
  ho.database_url = m_o.database_url;
  ho.schema = m_o.schema;
  try {
    m_http = std::make_unique<http::HttpServer>(m_control->ioContext(), ho, m_statsBoard);
  } catch (const http::HttpSetupError& e) {
    spdlog::critical("{}", e.what());
    return false;
  }
  m_statsBoard.publish(takeSnapshot(false));
  m_http->start();
  return true;
}

void Server::listenLoop() {
  std::unique_ptr<Store> conn;
  auto backoff = std::chrono::milliseconds(50);
  while (!m_listenStop.load()) {
    try {
      if (!conn) {
        StoreOptions so;
        so.schema = m_o.schema;
        so.application_name = "hostq server listener " + m_host;
        conn = Store::connect(resolveDatabaseUrl(m_o.database_url), so);
        conn->listen();
        backoff = std::chrono::milliseconds(50);
        // Anything enqueued while we were not listening must not wait for the poll.
        m_notified.store(true);
        m_segment->ringServerDoorbell();
      }
      pollfd fd{conn->socket(), POLLIN, 0};
      const int rc = ::poll(&fd, 1, 200);
      if (rc > 0 && conn->drainNotifications() > 0) {
        m_notified.store(true);
        m_segment->ringServerDoorbell();
      }
    } catch (const std::exception& e) {
      spdlog::debug("listener: {}", e.what());
      conn.reset();
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
}

int Server::run() {
  m_host = resolveHostname(m_o.settings.hostname);
  if (m_o.parent_pid > 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != m_o.parent_pid) return 0;
  }
  ::signal(SIGPIPE, SIG_IGN);

  StoreOptions so;
  so.schema = m_o.schema;
  so.keep_failed_jobs = m_o.settings.keep_failed_jobs;
  so.default_max_attempts = m_o.settings.default_max_attempts;
  // Every connection is named with the host (a farm of hosts on one database tells its backends
  // apart in pg_stat_activity by the last word).
  so.application_name = "hostq server " + m_host;
  const std::string url = resolveDatabaseUrl(m_o.database_url);
  // The database may not be up yet (pool start, database restart): keep trying.
  for (auto backoff = std::chrono::milliseconds(100);; backoff = std::min(backoff * 2, std::chrono::milliseconds(2000))) {
    try {
      m_store = Store::connect(url, so);
      break;
    } catch (const DbError& e) {
      if (e.kind() == DbErrorKind::GiveUp) throw;
      spdlog::warn("database not reachable ({}); retrying", e.what());
      if (g_exit.load()) return 0;
      std::this_thread::sleep_for(backoff);
    }
  }

  auto seg = shm::ServerSegment::create(static_cast<std::uint32_t>(std::max(1, m_o.settings.max_workers)));
  if (!seg) {
    spdlog::critical("cannot create the shared-memory segment");
    return 1;
  }
  m_segment.emplace(std::move(seg.value()));
  m_slotConn.assign(m_segment->capacity(), 0);
  for (std::uint32_t i = 0; i < m_segment->capacity(); ++i) m_freeSlots.push_back(i);
  m_buf.resize(std::max(shm::kReplyPayloadMax, shm::kRequestPayloadMax) + 64);

  // The writer's and the reserver's own connections: batch statements, nested-loop joins only.
  auto batchConnection = [url, so](std::string application_name) {
    return [url, so, application_name = std::move(application_name)] {
      StoreOptions o = so;
      o.application_name = application_name;
      o.nested_loop_joins = true;
      return Store::connect(url, o);
    };
  };
  auto wake = [this] { m_segment->ringServerDoorbell(); };
  m_writer = std::make_unique<ResultWriter>(batchConnection("hostq server writer " + m_host), wake);
  m_reservations = std::make_unique<ReservationRunner>(batchConnection("hostq server reserver " + m_host), wake);
  // Held-lock batch channels: idle_in_transaction_session_timeout far above the batch bound, so
  // a server that stops mid-batch without its connections closing still gives its claims back.
  std::vector<BatchChannel*> channels;
  for (int i = 0; i < m_o.settings.held_batches; ++i) {
    // Named with the host: an open transaction in pg_stat_activity says whose claims it holds.
    auto make = [url, so, name = "hostq server batch " + m_host,
                 timeout = std::max(std::chrono::milliseconds(10'000), m_o.settings.batch_max_open * 20)] {
      StoreOptions o = so;
      o.application_name = name;
      o.nested_loop_joins = true;
      o.idle_in_transaction_timeout = timeout;
      return Store::connect(url, o);
    };
    m_channels.push_back(std::make_unique<BatchChannel>(make, wake));
    channels.push_back(m_channels.back().get());
  }
  m_reserver = std::make_unique<Reserver>(*m_store, *m_writer, *m_reservations, m_o.settings, m_host,
                                          *this, m_stats, std::move(channels));

  const shm::ServerDoorbell doorbell = m_segment->doorbell();
  g_doorbell.store(&doorbell);
  struct sigaction sa{};
  sa.sa_handler = onServerSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGINT, SIGTERM, SIGQUIT}) ::sigaction(s, &sa, nullptr);

  control::ControlServerOptions co;
  co.socket_path = resolveSocketPath(m_o.settings.socket_path);
  co.max_frame_size = m_o.settings.max_frame_bytes;
  co.frame_timeout = m_o.settings.read_timeout;
  co.max_connections = static_cast<std::size_t>(m_o.settings.max_connections);
  if (!m_o.settings.allowed_group.empty()) {
    if (group* g = ::getgrnam(m_o.settings.allowed_group.c_str())) co.allowed_gid = g->gr_gid;
    else spdlog::warn("allowed_group {} not found; only our uid may connect", m_o.settings.allowed_group);
  }
  m_control = std::make_unique<control::ControlServer>(co, *this);
  if (!startHttp()) return 1;
  m_control->start();
  if (m_control->replacedStaleSocket()) m_reserver->expectReconnects();
  m_listener = std::thread([this] { listenLoop(); });
  m_monitor = std::make_unique<HostMonitor>(HostMonitorOptions{
      url, so, m_host, static_cast<int>(::getpid()), m_o.settings.host_timeout, m_o.settings.periodic_jobs, [this] {
        // Our jobs were given to other hosts: stop as on a signal; the pool starts a fresh server.
        m_declaredDead.store(true);
        onServerSignal(0);
      }});
  m_monitor->start();
  spdlog::info("server {} listening on {} (pid {}, {} shm slots)", m_host, co.socket_path, ::getpid(),
               m_segment->capacity());

  auto next_parent_check = SteadyClock::now();
  while (!g_exit.load()) {
    // PR_SET_PDEATHSIG is the fast path; this check (a syscall) covers a parent that died before
    // prctl, at most every 100 ms instead of on every turn of the loop.
    if (m_o.parent_pid > 0 && SteadyClock::now() >= next_parent_check) {
      next_parent_check = SteadyClock::now() + std::chrono::milliseconds(100);
      if (::getppid() != m_o.parent_pid) {
        spdlog::warn("pool {} is gone; exiting", m_o.parent_pid);
        break;
      }
    }
    bool did = drainInbox();
    did |= scanSlots();
    if (m_notified.exchange(false)) {
      ++m_stats.notifications;
      m_reserver->jobsMayExist();
    }
    const auto now = SteadyClock::now();
    expireDetached(now);
    publishStats(now);
    did |= m_reserver->poll(now);
    const bool idle = m_reserver->idle();
    if (idle != m_wasIdle) {
      m_wasIdle = idle;
      m_idleHook.run(idle);
    }
    m_idleHook.reap(now);
    if (did) continue;
    auto deadline = m_reserver->nextDeadline(now);
    if (!m_detached.empty()) deadline = std::min(deadline, m_nextDetachCheck);
    if (m_http) deadline = std::min(deadline, m_nextPublish);
    auto timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - SteadyClock::now());
    timeout = std::clamp(timeout, std::chrono::nanoseconds(0), std::chrono::nanoseconds(std::chrono::seconds(1)));
    m_segment->waitForWork(timeout);
  }

  spdlog::info("server shutting down: flushing results and releasing prefetched jobs");
  // Results that workers already wrote into their rings are not lost on the way out.
  drainInbox();
  scanSlots();
  // A pool stops its workers with us: an idle one that closed its connection a moment ago is
  // detached while it exits. Give such processes a moment to be gone, so that a job on its way
  // to one is written back now ("process died", as before detaching existed) instead of staying
  // locked by a dead pid until this host's next server start.
  for (const auto until = SteadyClock::now() + std::chrono::seconds(1);
       !m_detached.empty() && SteadyClock::now() < until;) {
    m_nextDetachCheck = SteadyClock::time_point{};
    expireDetached(SteadyClock::now());
    drainInbox();  // disconnects of workers exiting meanwhile
    if (!m_detached.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool clean = m_reserver->drain();
  if (!clean) spdlog::error("could not flush everything before exit; the next server start recovers it");
  m_control->broadcast(protocol::Notice{protocol::NoticeKind::Stop, "server stopping"});
  m_writer->stop();
  m_reservations->stop();
  for (auto& c : m_channels) c->stop();
  m_listenStop.store(true);
  m_listener.join();
  if (m_http) m_http->stop();
  m_monitor->stop(/*sign_off=*/clean && !m_declaredDead.load());
  m_control->stop();
  g_doorbell.store(nullptr);
  m_segment->retire();
  spdlog::info("server exiting: {} jobs completed, {} statements", m_stats.jobs_completed,
               m_stats.statements.total());
  return clean && !m_declaredDead.load() ? 0 : 1;
}

}  // namespace

int runServer(const ServerOptions& options) {
  g_exit.store(false);
  Server s(options);
  return s.run();
}

}  // namespace hostq::server
