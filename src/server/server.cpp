#include "server/server.hpp"

#include <grp.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>

#include "common/json.hpp"
#include "common/monotonic_clock.hpp"
#include "common/process_probe.hpp"
#include "control/control_server.hpp"
#include "store/store.hpp"
#include "http/http_server.hpp"
#include "protocol/codec.hpp"
#include "protocol/job_convert.hpp"
#include "server/host_monitor.hpp"
#include "server/idle_hook.hpp"
#include "server/notify_listener.hpp"
#include "server/reserver.hpp"
#include "server/result_writer.hpp"
#include "server/server_signals.hpp"
#include "server/stats_reporter.hpp"
#include "server/stats_snapshot.hpp"
#include "server/worker_registry.hpp"
#include "shm/server_segment.hpp"

namespace hostq::server {

namespace {

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
  std::size_t deliver(ClientId client, std::span<const Job> jobs, std::uint64_t request_seq) override;
  ReplyRoom replyRoom(ClientId client) override;
  void acknowledge(ClientId client, const std::vector<JobId>& jobs,
                   const std::vector<FailResult>& failures) override;

 private:
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
  /// Handles one ring record's frames in order; false when the worker was dropped for it.
  bool handleRecord(WorkerEntry& w, std::span<const std::byte> record);
  void handleHello(control::ConnId id, protocol::Hello& hello, const control::PeerCred& peer);
  void handleMonitor(control::ConnId id, protocol::Message& m);
  void handleMessage(WorkerEntry& w, protocol::Message& m, bool via_ring);
  void disconnect(control::ConnId id, const std::string& reason);
  void dropWorker(control::ConnId id, const std::string& reason);
  bool startHttp();

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
  std::unique_ptr<WorkerRegistry> m_registry;
  std::unique_ptr<HostMonitor> m_monitor;
  std::unique_ptr<NotifyListener> m_listener;
  std::atomic<bool> m_declaredDead{false};
  ServerStats m_stats;
  std::unique_ptr<StatsReporter> m_reporter;
  StatsBoard m_statsBoard;
  std::unique_ptr<http::HttpServer> m_http;

  std::mutex m_inboxMutex;
  /// Set (release) with every post, cleared by drainInbox: the loop's fast path skips the mutex.
  std::atomic<bool> m_inboxPending{false};
  std::vector<std::uint32_t> m_scanSlots;  ///< slots flagged for this pass; reused
  std::vector<Event> m_inbox;
  std::vector<Event> m_inboxWork;

  std::vector<std::byte> m_buf;
  /// A request record being handled; apart from m_buf, which replies are encoded into while the
  /// record's later frames still wait to be read.
  std::vector<std::byte> m_rxBuf = std::vector<std::byte>(shm::kRequestPayloadMax);
  protocol::Message m_rx;  ///< the request being handled; reused, so decoding allocates nothing
  protocol::Message m_tx;  ///< the JobAssigned being sent; reused likewise
  bool m_wasIdle = true;
};

namespace {
/// Reply records a reply of several jobs leaves free: for the acks and notices that follow it
/// before the worker reads again.
constexpr std::uint32_t kReplyRecordsKept = 4;
/// The most records one reply fills: a worker asking for many jobs with large payloads takes
/// the rest in its next request.
constexpr std::uint32_t kReplyRecordsMax = 24;
}  // namespace

ReserverSink::ReplyRoom Server::replyRoom(ClientId client) {
  const WorkerEntry* w = m_registry->byId(client);
  if (w == nullptr || w->detached() || !w->slot) return {};
  const std::uint32_t free = m_segment->replyRecordsFree(*w->slot);
  if (free <= kReplyRecordsKept) return {shm::kReplyPayloadMax, 1};  // the first job, as always
  return {shm::kReplyPayloadMax, std::min(free - kReplyRecordsKept, kReplyRecordsMax)};
}

std::size_t Server::deliver(ClientId client, std::span<const Job> jobs, std::uint64_t request_seq) {
  WorkerEntry* w = m_registry->byId(client);
  if (w == nullptr || w->detached() || jobs.empty()) return 0;
  WorkerEntry& conn = *w;
  const control::ConnId id = conn.conn;
  if (!std::holds_alternative<protocol::JobAssigned>(m_tx)) m_tx.emplace<protocol::JobAssigned>();
  auto& a = std::get<protocol::JobAssigned>(m_tx);
  const Job& job = jobs.front();
  protocol::assignJobAssigned(job, request_seq, a);
  if (conn.slot) {
    auto enc = protocol::encodeInto(m_tx, std::span<std::byte>(m_buf.data(), shm::kReplyPayloadMax));
    if (!enc.ok()) {
      // Too large for a ring record: the ring says "fetch over the socket".
      conn.parked_payloads[job.id] = std::move(a.payload);
      a.payload.clear();
      a.payload_omitted = true;
      enc = protocol::encodeInto(m_tx, std::span<std::byte>(m_buf.data(), shm::kReplyPayloadMax));
    }
    if (enc.ok()) {
      // The jobs of one request go frame after frame, in as few records as hold them (one
      // publish and at most one wake per record; the worker queues the jobs of the records
      // after the first as they come). The reserver sized them to fit (replyRoom).
      std::size_t used = enc.value();
      std::size_t sent = 0;  // jobs in records already published
      std::size_t n = 1;     // jobs encoded so far
      for (;;) {
        for (; n < jobs.size() && !a.payload_omitted; ++n) {
          protocol::assignJobAssigned(jobs[n], request_seq, a);
          auto more = protocol::encodeInto(
              m_tx, std::span<std::byte>(m_buf.data() + used, shm::kReplyPayloadMax - used));
          if (!more.ok()) break;  // this record is full; m_tx keeps jobs[n] for the next one
          used += more.value();
        }
        const auto r = m_segment->pushReply(*conn.slot, std::span<const std::byte>(m_buf.data(), used));
        if (r == shm::PushResult::Corrupt || r == shm::PushResult::Closed) {
          dropWorker(id, "reply ring corrupt or closed");
          return sent;
        }
        if (r != shm::PushResult::Ok) {
          if (sent > 0) return sent;
          break;  // the first job falls back to the socket below
        }
        sent = n;
        if (n == jobs.size() || a.payload_omitted) return sent;
        auto next = protocol::encodeInto(m_tx, std::span<std::byte>(m_buf.data(), shm::kReplyPayloadMax));
        if (!next.ok()) return sent;  // a job too large for a record of its own: not sent
        used = next.value();
        ++n;
      }
      conn.parked_payloads.erase(job.id);
      protocol::assignJobAssigned(job, request_seq, a);
    }
  }
  m_control->send(id, std::move(m_tx));
  return 1;
}

void Server::acknowledge(ClientId client, const std::vector<JobId>& jobs,
                         const std::vector<FailResult>& failures) {
  WorkerEntry* w = m_registry->byId(client);
  if (w == nullptr || w->detached()) return;
  WorkerEntry& conn = *w;
  const control::ConnId id = conn.conn;
  for (JobId j : jobs) conn.parked_payloads.erase(j);
  if (conn.slot) {
    // Acks are small; chunk them to fit one ring record each.
    for (const auto& ack : protocol::chunkAck(jobs, failures, shm::kReplyPayloadMax)) {
      auto enc = protocol::encodeInto(protocol::Message(ack), std::span<std::byte>(m_buf.data(), shm::kReplyPayloadMax));
      if (enc.ok() && m_segment->pushReply(*conn.slot, std::span<const std::byte>(m_buf.data(), enc.value())) ==
                          shm::PushResult::Ok)
        continue;
      m_control->send(id, protocol::Message(ack));
    }
    return;
  }
  m_control->send(id, protocol::Message(protocol::ResultAck{jobs, failures}));
}

void Server::handleHello(control::ConnId id, protocol::Hello& hello, const control::PeerCred& peer) {
  auto refuse = [&](const std::string& why) {
    spdlog::warn("refusing worker {} (pid {}): {}", hello.name, peer.pid, why);
    m_control->refuse(id, why);
  };
  if (auto why = WorkerRegistry::refusal(hello)) return refuse(*why);
  protocol::HelloOk ok;
  ok.generation = m_segment->generation();
  ok.server_pid = ::getpid();
  if (WorkerRegistry::isMonitorName(hello.name)) {
    m_registry->addMonitor(id);
    m_control->acceptHello(id, ok, -1);
    return;
  }
  if (auto old = m_registry->connectionNamed(hello.name)) {
    if (m_registry->byConn(*old)->pid != peer.pid) return refuse("worker name " + hello.name + " already connected");
    // The same process again: it gave up on its old connection (e.g. its segment went bad)
    // before we saw that connection close. The new one wins; the old one's EOF will find nothing.
    disconnect(*old, "replaced by a new connection from the same process");
    m_control->close(*old, "replaced by a new connection");
  }
  const WorkerEntry& w = m_registry->add(id, hello, peer.pid);
  if (w.slot) m_segment->resetSlot(*w.slot, peer.pid);
  ok.slot = w.slot;
  m_control->acceptHello(id, ok, w.slot ? m_segment->fd() : -1);
  spdlog::debug("worker {} registered ({}{})", hello.name, w.slot ? "shm slot " : "socket",
                w.slot ? std::to_string(*w.slot) : std::string());
}

void Server::handleMonitor(control::ConnId id, protocol::Message& m) {
  if (std::holds_alternative<protocol::StatsRequest>(m))
    m_control->send(id, protocol::Message(protocol::StatsReply{m_reporter->json()}));
  else if (!std::holds_alternative<protocol::Goodbye>(m) && !std::holds_alternative<protocol::Heartbeat>(m))
    dropWorker(id, "a monitor connection may only ask for stats");
}

void Server::handleMessage(WorkerEntry& conn, protocol::Message& m, bool via_ring) {
  const auto now = SteadyClock::now();
  const control::ConnId id = conn.conn;
  if (auto* r = std::get_if<protocol::Reserve>(&m)) {
    // The worker's monotonic clock is the same as ours (one host), so the hand-off latency
    // covers the trip through the ring or socket too.
    SteadyClock::time_point at = now;
    const auto mono = monotonicNs();
    if (r->request_mono_ns > 0 && static_cast<std::uint64_t>(r->request_mono_ns) <= mono &&
        mono - static_cast<std::uint64_t>(r->request_mono_ns) < 60'000'000'000ull)
      at = now - std::chrono::nanoseconds(mono - static_cast<std::uint64_t>(r->request_mono_ns));
    // Several jobs per reply only through the ring: a socket reply carries one frame.
    m_reserver->requestJob(conn.id, r->request_seq, at, via_ring ? r->max_jobs : std::uint16_t{1}, r->ahead);
  } else if (auto result = protocol::toJobResult(m)) {
    m_reserver->reportResult(conn.id, *result);
  } else if (std::holds_alternative<protocol::Heartbeat>(m)) {
  } else if (auto* fp = std::get_if<protocol::FetchPayload>(&m)) {
    auto it = conn.parked_payloads.find(fp->job_id);
    if (it == conn.parked_payloads.end()) return dropWorker(id, "fetch of a payload it was not given");
    m_control->send(id, protocol::Message(protocol::Payload{fp->job_id, std::move(it->second)}));
    conn.parked_payloads.erase(it);
  } else if (std::holds_alternative<protocol::StatsRequest>(m)) {
    m_control->send(id, protocol::Message(protocol::StatsReply{m_reporter->json()}));
  } else if (std::holds_alternative<protocol::Goodbye>(m)) {
    conn.goodbye = true;
  } else {
    dropWorker(id, std::string("unexpected ") + protocol::typeName(protocol::typeOf(m)) +
                       (via_ring ? " in ring" : " on socket"));
  }
}

void Server::dropWorker(control::ConnId id, const std::string& reason) {
  ++m_stats.workers_dropped;
  WorkerEntry* w = m_registry->byConn(id);
  if (w != nullptr && w->slot) m_segment->releaseSlot(*w->slot);
  spdlog::warn("dropping worker {}: {}", w != nullptr ? w->name : "?", reason);
  m_control->close(id, reason);  // onDisconnect follows and finishes the clean-up
}

void Server::disconnect(control::ConnId id, const std::string& reason) {
  WorkerEntry* w = m_registry->byConn(id);
  if (w != nullptr && w->slot && m_segment->isActive(*w->slot)) {
    // What the worker wrote into its ring before it went away is still there: results it
    // reported must be written, not turned into "process died" reschedules (and reruns).
    for (int n = 0; n < 256; ++n) {
      std::size_t len = 0;
      if (m_segment->popRequest(*w->slot, std::span<std::byte>(m_rxBuf.data(), m_rxBuf.size()), len) !=
          shm::PopResult::Ok)
        break;
      std::span<const std::byte> record(m_rxBuf.data(), len);
      while (!record.empty()) {
        auto frame = protocol::nextFrame(record);
        if (!frame.ok() || protocol::decodeInto(frame.value(), m_rx)) break;
        if (std::holds_alternative<protocol::Complete>(m_rx) || std::holds_alternative<protocol::Fail>(m_rx) ||
            std::holds_alternative<protocol::Goodbye>(m_rx))
          handleMessage(*w, m_rx, true);
      }
    }
  }
  // The job the worker had begun, as its slot says, once its results there are taken: jobs it
  // holds besides that one it never began (several per reply), should it be gone for good.
  if (w != nullptr && w->slot) m_reserver->lastStarted(w->id, m_segment->startedJob(*w->slot));
  if (auto slot = m_registry->closed(id, reason)) m_segment->releaseSlot(*slot);
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
        // The control server passes nothing before an accepted Hello: an unknown connection
        // was refused or already dropped.
        if (m_registry->isMonitor(e.conn)) {
          handleMonitor(e.conn, *e.message);
        } else if (WorkerEntry* w = m_registry->byConn(e.conn)) {
          // A ring worker that speaks on the socket gets its ring looked at too, flag or not: a
          // worker that broke its ring without flagging it is found here, not only when it asks.
          if (w->slot) m_segment->markPending(*w->slot);
          handleMessage(*w, *e.message, false);
        }
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
  // Only the slots whose workers flagged a request: a pass costs the work present, not the
  // number of workers. The segment rotates where each pass starts: requests enter the waiting
  // FIFO in the order they are read, so a fixed order served low slots first whenever
  // prefetched jobs ran short (256 workers: 2.8x between the busiest and the idlest worker).
  m_scanSlots.clear();
  m_segment->takePendingSlots(m_scanSlots);
  for (std::uint32_t slot : m_scanSlots) {
    const WorkerEntry* owner = m_registry->bySlot(slot);
    const control::ConnId id = owner != nullptr ? owner->conn : 0;
    for (int n = 0;; ++n) {
      if (n == 64) {  // bounded per slot per pass: no worker starves the others
        m_segment->markPending(slot);
        break;
      }
      std::size_t len = 0;
      const auto r = m_segment->popRequest(slot, std::span<std::byte>(m_rxBuf.data(), m_rxBuf.size()), len);
      if (r == shm::PopResult::Empty) break;
      if (r != shm::PopResult::Ok) {
        if (id) dropWorker(id, "request ring corrupt");
        else m_segment->releaseSlot(slot);
        break;
      }
      did = true;
      WorkerEntry* w = m_registry->bySlot(slot);
      if (w == nullptr || w->conn != id) break;
      if (!handleRecord(*w, std::span<const std::byte>(m_rxBuf.data(), len))) break;
      if (!m_segment->isActive(slot)) break;
    }
  }
  return did;
}

bool Server::handleRecord(WorkerEntry& w, std::span<const std::byte> record) {
  const control::ConnId id = w.conn;
  // A record holds one frame or several back to back (a result and the Reserve behind it). Its
  // framing is checked whole before any frame is acted on.
  if (record.empty()) {
    dropWorker(id, "empty request record");
    return false;
  }
  for (auto rest = record; !rest.empty();) {
    auto frame = protocol::nextFrame(rest);
    if (!frame.ok()) {
      dropWorker(id, "bad request record: " + frame.error().describe());
      return false;
    }
  }
  while (!record.empty()) {
    auto frame = protocol::nextFrame(record);
    if (!frame.ok()) return false;  // checked above
    if (auto bad = protocol::decodeInto(frame.value(), m_rx)) {
      dropWorker(id, "bad request record: " + bad->describe());
      return false;
    }
    const auto type = protocol::typeOf(m_rx);
    if (!protocol::isWorkerToServer(type) || type == protocol::MessageType::Hello) {
      dropWorker(id, std::string("unexpected ") + protocol::typeName(type) + " in ring");
      return false;
    }
    handleMessage(w, m_rx, true);
    // Handling may have dropped the worker (and its entry with it).
    const WorkerEntry* still = m_registry->byConn(id);
    if (still != &w || !w.slot || !m_segment->isActive(*w.slot)) return false;
  }
  return true;
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
  m_reporter->publishTo(m_statsBoard, m_http->address());
  m_http->start();
  return true;
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
      if (ServerSignals::stopRequested()) return 0;
      std::this_thread::sleep_for(backoff);
    }
  }

  auto seg = shm::ServerSegment::create(static_cast<std::uint32_t>(std::max(1, m_o.settings.max_workers)));
  if (!seg) {
    spdlog::critical("cannot create the shared-memory segment");
    return 1;
  }
  m_segment.emplace(std::move(seg.value()));
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
  m_registry = std::make_unique<WorkerRegistry>(*m_reserver, m_segment->capacity(), m_o.settings.reconnect_grace);
  m_reporter = std::make_unique<StatsReporter>(*m_reserver, m_stats, m_host, m_segment->generation(), m_channels.size());

  const shm::ServerDoorbell doorbell = m_segment->doorbell();
  ServerSignals::install(&doorbell);

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
  StoreOptions lo;
  lo.schema = m_o.schema;
  lo.application_name = "hostq server listener " + m_host;
  m_listener = std::make_unique<NotifyListener>(url, lo, wake);
  m_listener->start();
  m_monitor = std::make_unique<HostMonitor>(HostMonitorOptions{
      url, so, m_host, static_cast<int>(::getpid()), m_o.settings.host_timeout, m_o.settings.periodic_jobs, [this] {
        // Our jobs were given to other hosts: stop as on a signal; the pool starts a fresh server.
        m_declaredDead.store(true);
        ServerSignals::requestStop();
      }});
  m_monitor->start();
  spdlog::info("server {} listening on {} (pid {}, {} shm slots)", m_host, co.socket_path, ::getpid(),
               m_segment->capacity());

  auto next_parent_check = SteadyClock::now();
  while (!ServerSignals::stopRequested()) {
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
    if (m_listener->takeNotified()) {
      ++m_stats.notifications;
      m_reserver->jobsMayExist();
    }
    const auto now = SteadyClock::now();
    m_registry->expire(now);
    m_reporter->publishIfDue(now);
    m_reserver->setLiveHosts(m_monitor->liveHosts());
    did |= m_reserver->poll(now);
    const bool idle = m_reserver->idle();
    if (idle != m_wasIdle) {
      m_wasIdle = idle;
      m_idleHook.run(idle);
    }
    m_idleHook.reap(now);
    if (did) continue;
    auto deadline = m_reserver->nextDeadline(now);
    deadline = std::min({deadline, m_registry->nextExpiry(), m_reporter->nextPublish()});
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
       m_registry->anyDetached() && SteadyClock::now() < until;) {
    m_registry->expire(SteadyClock::now(), /*now_anyway=*/true);
    drainInbox();  // disconnects of workers exiting meanwhile
    if (m_registry->anyDetached()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool clean = m_reserver->drain();
  if (!clean) spdlog::error("could not flush everything before exit; the next server start recovers it");
  m_control->broadcast(protocol::Notice{protocol::NoticeKind::Stop, "server stopping"});
  m_writer->stop();
  m_reservations->stop();
  for (auto& c : m_channels) c->stop();
  m_listener->stop();
  if (m_http) m_http->stop();
  m_monitor->stop(/*sign_off=*/clean && !m_declaredDead.load());
  m_control->stop();
  ServerSignals::uninstall();
  m_segment->retire();
  spdlog::info("server exiting: {} jobs completed, {} statements", m_stats.jobs_completed,
               m_stats.statements.total());
  return clean && !m_declaredDead.load() ? 0 : 1;
}

}  // namespace

int runServer(const ServerOptions& options) {
  ServerSignals::reset();
  Server s(options);
  return s.run();
}

}  // namespace hostq::server
