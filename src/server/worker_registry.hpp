#pragma once
// The server's workers: one WorkerId per worker process, owning what the server knows of it —
// its control connection, its shared-memory slot, its pid and process identity, its config, and
// whether it is live (connected) or detached (connection gone, process alive, within the
// reconnect grace). The registry decides a worker's lifecycle; the reserver (WorkerJobs) decides
// what that means for its jobs, and hears of each step, ending with gone(id, Died|Left).
// Single-threaded: the server's loop thread owns it. Monitor connections (`hostq stats`,
// `wait-idle`) are not workers: the registry only remembers that they are monitors.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/process_probe.hpp"
#include "control/control_server.hpp"
#include "hostq/config.hpp"
#include "hostq/worker_config.hpp"
#include "protocol/messages.hpp"
#include "server/job_ledger.hpp"

namespace hostq::server {

using SteadyClock = std::chrono::steady_clock;
/// A worker as the server knows it; the reserver indexes its per-worker state by it. Reused after
/// the worker is gone.
using WorkerId = ClientId;

/// How a worker ended. Died: EOF without goodbye, or detached and never back; the job it held
/// counts an attempt ("process died"). Left: it said goodbye.
enum class Gone { Died, Left };

/// The reserver's side of a worker's lifecycle.
class WorkerJobs {
 public:
  virtual ~WorkerJobs() = default;
  virtual void added(WorkerId id, const std::string& name, int pid, const WorkerConfig& config,
                     Transport transport) = 0;
  /// Its connection went away but the process lives: it keeps its jobs, gets nothing new.
  virtual void detached(WorkerId id) = 0;
  /// The detached process registered again.
  virtual void reattached(WorkerId id, Transport transport) = 0;
  virtual void gone(WorkerId id, Gone how) = 0;
  /// Jobs handed to it, reported or not, not yet written: what a detach keeps.
  virtual bool holdsAnything(WorkerId id) const = 0;
  /// Jobs it holds without a result.
  virtual std::size_t jobsHeld(WorkerId id) const = 0;
};

struct WorkerEntry {
  WorkerId id = 0;
  std::string name;
  pid_t pid = 0;  ///< from SO_PEERCRED
  /// The process at Hello, to tell it alive from a reused pid.
  std::optional<ProcessIdentity> process;
  WorkerConfig config;
  control::ConnId conn = 0;  ///< 0 = detached
  std::optional<std::uint32_t> slot;
  bool goodbye = false;
  /// Detached: when it loses its jobs if it has not registered again.
  SteadyClock::time_point grace_until{};
  /// Payloads too large for the ring, kept until the worker fetches them.
  std::unordered_map<JobId, std::string> parked_payloads;

  bool detached() const noexcept { return conn == 0; }
  Transport transport() const noexcept { return slot ? Transport::Shm : Transport::Socket; }
};

class WorkerRegistry {
 public:
  WorkerRegistry(WorkerJobs& jobs, std::uint32_t slots, std::chrono::milliseconds reconnect_grace);

  /// Why this Hello must be refused; nullopt = acceptable.
  static std::optional<std::string> refusal(const protocol::Hello& hello);
  static bool isMonitorName(const std::string& name) noexcept { return name.rfind("monitor:", 0) == 0; }

  void addMonitor(control::ConnId conn) { m_monitors.insert(conn); }
  bool isMonitor(control::ConnId conn) const noexcept { return m_monitors.count(conn) > 0; }

  /// The live connection of the worker named `name`, if any.
  std::optional<control::ConnId> connectionNamed(const std::string& name) const;

  /// Registers the worker on `conn` (its Hello was acceptable, its name free). A detached worker
  /// of the same process and config gets its id back (with its jobs); a shm worker gets a free
  /// slot if there is one.
  WorkerEntry& add(control::ConnId conn, const protocol::Hello& hello, pid_t peer_pid);

  /// The connection closed (or was replaced). A worker that said goodbye is gone (Left); one whose
  /// process still runs while it holds jobs is detached for the reconnect grace; otherwise gone
  /// (Died). Returns the slot it had, for the caller to release. `reason` is for the log.
  std::optional<std::uint32_t> closed(control::ConnId conn, const std::string& reason);

  /// Detached workers whose process died or whose grace ran out are gone (Died). Looks at most
  /// every 100 ms unless `now_anyway`.
  void expire(SteadyClock::time_point now, bool now_anyway = false);
  /// When expire() next has something to look at; max() when nothing is detached.
  SteadyClock::time_point nextExpiry() const noexcept;
  bool anyDetached() const noexcept { return m_detachedCount > 0; }

  WorkerEntry* byConn(control::ConnId conn);
  WorkerEntry* bySlot(std::uint32_t slot);
  WorkerEntry* byId(WorkerId id);
  std::size_t size() const noexcept { return m_byId.size(); }
  std::size_t freeSlots() const noexcept { return m_freeSlots.size(); }

 private:
  void forget(WorkerEntry& w, Gone how);
  WorkerId allocateId();

  WorkerJobs& m_jobs;
  const std::chrono::milliseconds m_grace;
  std::unordered_map<WorkerId, WorkerEntry> m_byId;
  std::unordered_map<control::ConnId, WorkerId> m_byConn;
  std::vector<std::optional<WorkerId>> m_bySlot;
  std::deque<std::uint32_t> m_freeSlots;  ///< FIFO, so a just-released slot is reused last
  std::vector<WorkerId> m_freeIds;
  WorkerId m_nextId = 0;
  std::unordered_set<control::ConnId> m_monitors;
  std::size_t m_detachedCount = 0;
  SteadyClock::time_point m_nextCheck{};
};

}  // namespace hostq::server
