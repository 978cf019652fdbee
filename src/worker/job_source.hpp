#pragma once
// Where a worker's jobs come from and its results go: the host's server (shared memory or socket)
// or the database itself (direct). The run loop is the same for all.
#include <chrono>
#include <optional>
#include <string>

#include "hostq/job.hpp"

namespace hostq::worker {

struct Result {
  JobId id = 0;
  bool success = true;
  std::string error;
  std::optional<TimePoint> run_at;
  bool count_attempt = true;
  bool permanent = false;
};

enum class NextStatus { Job, Interrupted, Stop };

class JobSource {
 public:
  virtual ~JobSource() = default;
  /// Blocks until a job is assigned to this worker (long poll), the interrupt fd becomes readable
  /// (Interrupted), or the source can never deliver again (Stop: e.g. the server told us to stop).
  /// Reconnects by itself when the server goes away.
  virtual NextStatus next(Job& out) = 0;
  /// Reports a job's result. May return before it is durable; the source keeps it until the
  /// server acknowledges it and resends it after a reconnect.
  virtual void report(const Result& result) = 0;
  /// Called from another thread when the worker must abort the running job now (TERM): reports
  /// the failure by a path that does not race the main thread, best effort, and the process exits
  /// right after. Returns false when the source knows the job was already reported (the main
  /// thread got there first): then nothing was sent and the worker should stop normally.
  virtual bool abortRunning(JobId job, const std::string& error) noexcept = 0;
  /// Clean shutdown: waits (bounded) for outstanding results to be durable, says goodbye.
  virtual void close() = 0;
  /// The worker's name as the server/database knows it.
  virtual const std::string& name() const = 0;
};

}  // namespace hostq::worker
