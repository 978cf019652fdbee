#include "support/server_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/json.hpp"
#include "protocol/codec.hpp"
#include "shm/layout.hpp"
#include "shm/worker_segment.hpp"
#include "support/wait.hpp"

namespace hostq::test {

// ---- HostqProcess ------------------------------------------------------------------------------

HostqProcess::HostqProcess(std::vector<std::string> args, std::string log) : m_log(std::move(log)) {
  args.insert(args.begin(), hostqBinary());
  ExecOptions o;
  o.die_with_parent = true;
  o.own_process_group = true;  // a ^C at the terminal goes to ctest, not to our servers
  m_proc = Proc::execLogged(m_log, args, o);
}

std::optional<int> HostqProcess::wait(std::chrono::milliseconds timeout) {
  const auto code = m_proc.wait(timeout);
  if (!code) return std::nullopt;
  if (auto sig = m_proc.termSignal()) return -*sig;
  return code;
}

void HostqProcess::kill9() {
  if (!m_proc.running()) return;
  m_proc.signal(SIGKILL);
  (void)m_proc.wait(std::chrono::seconds(30));
}

// ---- Monitor and stats -------------------------------------------------------------------------

std::optional<std::string> Monitor::stats(std::chrono::milliseconds timeout) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!m_client.connected()) {
      if (!m_client.connect(m_socket, timeout).ok()) return std::nullopt;
      protocol::Hello h;
      h.name = "monitor:test:" + std::to_string(::getpid());
      h.pid = static_cast<std::int32_t>(::getpid());
      h.transport = protocol::Transport::Socket;
      if (!m_client.hello(h, timeout).ok()) {
        m_client.close();
        return std::nullopt;
      }
    }
    if (!m_client.send(protocol::Message(protocol::StatsRequest{})).ok()) {
      m_client.close();
      continue;  // a server restarted under us: one fresh connection
    }
    for (;;) {
      auto r = m_client.receive(timeout, -1);
      if (r.kind != control::ControlClient::Received::Kind::Message) {
        m_client.close();
        break;
      }
      if (auto* s = std::get_if<protocol::StatsReply>(&*r.message)) return s->json;
    }
  }
  return std::nullopt;
}

// ---- TestClient --------------------------------------------------------------------------------

TestClient::TestClient() : m_buf(std::max(shm::kReplyPayloadMax, shm::kRequestPayloadMax) + 64) {}
TestClient::~TestClient() = default;

bool TestClient::connect(const std::string& socket, const std::string& name, const WorkerConfig& config,
                         protocol::Transport transport) {
  m_name = name;
  if (!m_client.connect(socket, 2000ms).ok()) return false;
  protocol::Hello h;
  h.name = name;
  h.pid = static_cast<std::int32_t>(::getpid());
  h.config = config;
  h.transport = transport;
  auto r = m_client.hello(h, 5000ms);
  if (!r.ok()) return false;
  if (r.value().ok.slot && r.value().segment_fd.valid()) {
    auto s = shm::WorkerSegment::attach(r.value().segment_fd.get(), *r.value().ok.slot, r.value().ok.generation);
    if (s) m_seg = std::make_unique<shm::WorkerSegment>(std::move(s.value()));
  }
  return true;
}

bool TestClient::usesRing() const noexcept { return m_seg != nullptr; }

bool TestClient::post(const protocol::Message& m) {
  if (m_seg) {
    auto enc = protocol::encodeInto(m, std::span<std::byte>(m_buf.data(), shm::kRequestPayloadMax));
    if (enc.ok() && m_seg->pushRequest(std::span<const std::byte>(m_buf.data(), enc.value())) == shm::PushResult::Ok)
      return true;
  }
  return m_client.send(m).ok();
}

bool TestClient::reserve(std::uint16_t max_jobs) {
  const std::uint64_t seq = m_seq++;
  protocol::Reserve r{seq, 0};
  r.max_jobs = max_jobs;
  const protocol::Message m(r);
  if (m_seg) {
    // Through the ring the client does not see the Reserve; tell it which reply to expect (the
    // reply may still come over the socket).
    m_client.setPendingReserve(seq);
    if (post(m)) return true;
    m_client.setPendingReserve(std::nullopt);
  }
  return m_client.send(m).ok();
}

std::optional<protocol::JobAssigned> TestClient::pump(std::chrono::milliseconds timeout, JobId ack) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto take = [&](protocol::Message& m) -> std::optional<protocol::JobAssigned> {
    if (auto* a = std::get_if<protocol::JobAssigned>(&m)) {
      m_client.setPendingReserve(std::nullopt);
      return *a;
    }
    if (auto* r = std::get_if<protocol::ResultAck>(&m)) m_acked.insert(r->job_ids.begin(), r->job_ids.end());
    return std::nullopt;
  };
  if (ack == 0 && !m_more.empty()) {
    auto j = std::move(m_more.front());
    m_more.pop_front();
    return j;
  }
  for (;;) {
    if (m_seg) {
      for (;;) {
        std::size_t len = 0;
        if (m_seg->popReply(std::span<std::byte>(m_buf.data(), m_buf.size()), len) != shm::PopResult::Ok) break;
        // A record holds one frame, or the jobs of one reply frame after frame.
        std::optional<protocol::JobAssigned> first;
        for (std::span<const std::byte> rest(m_buf.data(), len); !rest.empty();) {
          auto frame = protocol::nextFrame(rest);
          if (!frame.ok()) return std::nullopt;
          auto msg = protocol::decode(frame.value());
          if (!msg.ok()) return std::nullopt;
          if (auto j = take(msg.value())) (first ? m_more.push_back(std::move(*j)) : void(first = std::move(j)));
        }
        if (first) return first;
      }
    }
    for (;;) {
      pollfd p{m_client.fd(), POLLIN, 0};
      if (m_client.fd() < 0 || ::poll(&p, 1, 0) <= 0) break;
      auto r = m_client.receive(0ms, -1);
      if (r.kind != control::ControlClient::Received::Kind::Message) {
        if (r.kind != control::ControlClient::Received::Kind::Timeout) return std::nullopt;
        break;
      }
      if (auto j = take(*r.message)) return j;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || (ack != 0 && m_acked.count(ack))) return std::nullopt;
    const auto slice = std::min<std::chrono::nanoseconds>(deadline - now, 20ms);
    if (m_seg) {
      (void)m_seg->waitForReply(slice);
    } else {
      pollfd p{m_client.fd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(slice).count()) + 1);
    }
  }
}

std::optional<protocol::JobAssigned> TestClient::waitJob(std::chrono::milliseconds timeout) { return pump(timeout); }

void TestClient::markStarted(JobId id) {
  if (m_seg) m_seg->markStarted(static_cast<std::uint64_t>(id));
}

bool TestClient::complete(JobId id) { return post(protocol::Message(protocol::Complete{id, m_seq++})); }

bool TestClient::completeAndReserve(JobId id) {
  if (!m_seg) return false;
  std::vector<std::byte> rec(shm::kRequestPayloadMax);
  auto a = protocol::encodeInto(protocol::Message(protocol::Complete{id, m_seq++}), rec);
  if (!a.ok()) return false;
  const std::uint64_t seq = m_seq++;
  auto b = protocol::encodeInto(protocol::Message(protocol::Reserve{seq, 0}),
                                std::span<std::byte>(rec).subspan(a.value()));
  if (!b.ok()) return false;
  m_client.setPendingReserve(seq);
  return pushRecord(std::span<const std::byte>(rec.data(), a.value() + b.value()));
}

bool TestClient::pushRecord(std::span<const std::byte> record) {
  return m_seg && m_seg->pushRequest(record) == shm::PushResult::Ok;
}

bool TestClient::fail(JobId id, const std::string& error) {
  protocol::Fail f;
  f.job_id = id;
  f.seq = m_seq++;
  f.error = error;
  return post(protocol::Message(std::move(f)));
}

bool TestClient::waitAck(JobId id, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!m_acked.count(id)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    (void)pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now), id);
    if (!m_client.connected()) return m_acked.count(id) > 0;
  }
  return true;
}

void TestClient::goodbye() {
  if (m_client.connected()) (void)m_client.send(protocol::Message(protocol::Goodbye{}));
  close();
}

void TestClient::close() {
  m_seg.reset();
  m_client.close();
}

// ---- ServerTest --------------------------------------------------------------------------------

namespace {
std::atomic<int> g_caseCounter{0};
}

void ServerTest::SetUp() {
  DbTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) return;
  const int n = g_caseCounter++;
  m_dir = "/tmp/hq-srv-" + std::to_string(::getpid()) + "-" + std::to_string(n);
  std::filesystem::remove_all(m_dir);
  std::filesystem::create_directories(m_dir);
  m_socket = m_dir + "/hq.sock";
  m_host = "t" + std::to_string(::getpid()) + "x" + std::to_string(n);
  monitor = std::make_unique<Monitor>(m_socket);
}

void ServerTest::TearDown() {
  monitor.reset();
  // Keep the logs of a failed case for the reader; clean up after a passing one.
  if (!m_dir.empty() && !HasFailure()) std::filesystem::remove_all(m_dir);
  else if (!m_dir.empty()) std::fprintf(stderr, "logs kept in %s\n", m_dir.c_str());
  DbTest::TearDown();
}

std::vector<std::string> ServerTest::fastFlags() {
  return {"--restart-grace", "200ms", "--poll-interval", "200ms"};
}

HostqProcess ServerTest::startServer(const std::vector<std::string>& flags) {
  std::vector<std::string> args{"server", "--database-url", url(), "--schema", schema(),
                                "--socket", m_socket, "--hostname", m_host};
  auto fast = fastFlags();
  // Flags given by the case win over the fast defaults.
  for (std::size_t i = 0; i + 1 < fast.size(); i += 2)
    if (std::find(flags.begin(), flags.end(), fast[i]) == flags.end()) args.insert(args.end(), {fast[i], fast[i + 1]});
  args.insert(args.end(), flags.begin(), flags.end());
  HostqProcess p(args, m_dir + "/server-" + std::to_string(m_logCounter++) + ".log");
  // Ready when it answers stats on a fresh connection (a restarted server: the old one is gone,
  // so the monitor reconnects to the new one).
  Monitor probe(m_socket);
  const bool up = waitUntil([&] { return !p.running() || probe.stats(500ms).has_value(); }, 10s);
  EXPECT_TRUE(up && p.running()) << "server did not come up:\n" << p.log();
  return p;
}

HostqProcess ServerTest::startWorker(const std::vector<std::string>& flags) {
  std::vector<std::string> args{"worker", "--builtin-handlers", "--socket", m_socket, "--schema", schema(),
                                "--hostname", m_host, "--database-url", url()};
  args.insert(args.end(), flags.begin(), flags.end());
  return HostqProcess(args, m_dir + "/worker-" + std::to_string(m_logCounter++) + ".log");
}

std::string ServerTest::stats() {
  auto s = monitor->stats();
  EXPECT_TRUE(s.has_value()) << "no stats from the server";
  return s.value_or("{}");
}

double ServerTest::stat(const std::string& path) {
  const std::string s = stats();
  auto v = statNumber(s, path);
  EXPECT_TRUE(v.has_value()) << "no " << path << " in " << s;
  return v.value_or(-1);
}

bool ServerTest::waitStats(const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds timeout) {
  return waitUntil([&] {
    auto s = monitor->stats();
    return s && pred(*s);
  }, timeout);
}

std::vector<JobId> ServerTest::enqueueAppend(int n, const std::string& file, const std::string& queue, int priority) {
  std::vector<NewJob> jobs;
  for (int i = 0; i < n; ++i) {
    NewJob j;
    j.tag = "hostq.append";
    j.payload = file;
    j.queue = queue;
    j.priority = priority;
    jobs.push_back(j);
  }
  std::vector<JobId> ids;
  for (auto& e : store->enqueueMany(jobs)) ids.push_back(e.id);
  return ids;
}

std::map<JobId, std::vector<std::string>> ServerTest::appendLog(const std::string& file) const {
  std::map<JobId, std::vector<std::string>> out;
  std::ifstream in(file);
  JobId id;
  std::string who;
  while (in >> id >> who) out[id].push_back(who);
  return out;
}

}  // namespace hostq::test
