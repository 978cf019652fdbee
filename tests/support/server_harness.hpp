#pragma once
// Driving a real server in tests: `hostq server` and `hostq worker` as child processes (exec of
// HOSTQ_BIN, so no gtest or libpq state leaks into them), a monitor connection that reads the
// server's stats JSON, and TestClient, a worker spoken by hand over the control socket (and the
// shared-memory ring when the server grants one) for the cases a real worker cannot stage:
// holding a job without reporting, vanishing between request and reply.
//
// ServerTest gives each case its own schema (DbTest), socket path, host name and scratch dir, so
// `ctest -j` can run cases side by side.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <deque>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "control/control_client.hpp"
#include "protocol/messages.hpp"
#include "support/db_fixture.hpp"
#include "support/farm.hpp"
#include "support/run_hostq.hpp"
#include "support/stats_json.hpp"

namespace hostq::shm {
class WorkerSegment;
}

namespace hostq::test {

using namespace std::chrono_literals;

/// A child running the hostq binary (a Proc: one way to start it in the tests) with stdout and
/// stderr appended to `log`, in its own process group, killed with the test runner. The
/// destructor kills (-9) and reaps it if it still runs.
class HostqProcess {
 public:
  HostqProcess() = default;
  HostqProcess(std::vector<std::string> args, std::string log);

  pid_t pid() const noexcept { return m_proc.pid(); }
  bool running() { return m_proc.running(); }
  void signal(int sig) const { m_proc.signal(sig); }
  /// Exit code, -signal if killed, nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// kill -9 and reap.
  void kill9();
  std::string log() const { return slurpFile(m_log); }

 private:
  Proc m_proc;
  std::string m_log;
};

/// A monitor connection (name "monitor:…"): asks for stats, never for jobs.
class Monitor {
 public:
  explicit Monitor(std::string socket) : m_socket(std::move(socket)) {}
  /// The stats JSON, or nullopt (no server yet, server gone); reconnects as needed.
  std::optional<std::string> stats(std::chrono::milliseconds timeout = 2000ms);

 private:
  std::string m_socket;
  control::ControlClient m_client;
};

/// A worker driven by hand, one request at a time.
class TestClient {
 public:
  TestClient();
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  /// Connects and says Hello. Transport Shm uses the ring when the server grants a slot.
  bool connect(const std::string& socket, const std::string& name, const WorkerConfig& config = {},
               protocol::Transport transport = protocol::Transport::Socket);
  const std::string& name() const noexcept { return m_name; }
  bool usesRing() const noexcept;

  /// Sends one Reserve (long poll) for up to `max_jobs` jobs (more than one: through the ring).
  bool reserve(std::uint16_t max_jobs = 1);
  /// Waits for the answer to the outstanding Reserve; also collects acks meanwhile. The jobs a
  /// ring record carries behind the first are returned by the calls that follow, in order.
  std::optional<protocol::JobAssigned> waitJob(std::chrono::milliseconds timeout);
  /// The slot's startedJob mark, as a worker writes it before running a job.
  void markStarted(JobId id);
  bool complete(JobId id);
  /// The worker's hot path: the result and the next Reserve in one ring record.
  bool completeAndReserve(JobId id);
  /// Raw bytes as one ring record (no framing checked): for malformed-record cases.
  bool pushRecord(std::span<const std::byte> record);
  bool fail(JobId id, const std::string& error);
  /// Waits until the server acknowledged `id` (its result is durable).
  bool waitAck(JobId id, std::chrono::milliseconds timeout);
  const std::set<JobId>& acked() const noexcept { return m_acked; }
  void goodbye();
  /// Drops the connection without a Goodbye: to the server this worker died.
  void close();

 private:
  bool post(const protocol::Message& m);
  /// Reads whatever is there (ring and socket) for up to `timeout`; returns a job if one came,
  /// or nothing once `ack` (if not 0) is acknowledged.
  std::optional<protocol::JobAssigned> pump(std::chrono::milliseconds timeout, JobId ack = 0);

  control::ControlClient m_client;
  std::unique_ptr<shm::WorkerSegment> m_seg;
  std::string m_name;
  std::uint64_t m_seq = 1;
  std::set<JobId> m_acked;
  std::deque<protocol::JobAssigned> m_more;  ///< jobs behind the first of a record, not yet taken
  std::vector<std::byte> m_buf;
};

/// A database-backed case with its own server socket, host name and scratch directory.
class ServerTest : public DbTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::string& socketPath() const { return m_socket; }
  const std::string& host() const { return m_host; }
  const std::string& dir() const { return m_dir; }
  std::string prefetchOwner() const { return "prefetch:" + m_host; }

  /// `hostq server` on this case's schema, socket and host name, plus `flags`; waits until it
  /// answers stats.
  HostqProcess startServer(const std::vector<std::string>& flags = {});
  /// `hostq worker --builtin-handlers` on this case's socket (transport shm unless `flags` say).
  HostqProcess startWorker(const std::vector<std::string>& flags = {});
  /// Flags every test server gets unless overridden: short restart grace and poll interval.
  static std::vector<std::string> fastFlags();

  /// The server's stats JSON (fails the test when it cannot be had).
  std::string stats();
  double stat(const std::string& path);
  /// Polls stats until `pred` holds.
  bool waitStats(const std::function<bool(const std::string&)>& pred,
                 std::chrono::milliseconds timeout = 10s);

  std::int64_t count(const std::string& where) const {
    return queryInt("SELECT count(*) FROM delayed_jobs WHERE " + where);
  }
  /// Worker name (`host:pid`) of a worker process of this case.
  std::string workerName(pid_t pid) const { return m_host + ":" + std::to_string(pid); }
  /// Enqueues `n` hostq.append jobs (one transaction) writing to `file`; returns their ids.
  std::vector<JobId> enqueueAppend(int n, const std::string& file, const std::string& queue = "queue",
                                   int priority = kNormalPriority);
  /// Lines of an append file: job id → worker names that ran it.
  std::map<JobId, std::vector<std::string>> appendLog(const std::string& file) const;

  std::unique_ptr<Monitor> monitor;

 private:
  std::string m_socket;
  std::string m_host;
  std::string m_dir;
  int m_logCounter = 0;
};

}  // namespace hostq::test
