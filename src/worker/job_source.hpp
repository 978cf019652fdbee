#pragma once
// Where a worker's jobs come from and its results go: the host's server (shared memory or socket)
// or the database itself (direct). The run loop is the same for all.
#include <functional>
#include <string>
#include <utility>

#include "hostq/job.hpp"
#include "hostq/job_result.hpp"

namespace hostq::worker {

/// Told the database's decision on a failure this worker reported (retried or permanent), on
/// the thread that calls next(), report() or close(), when the result is durable.
using DecisionSink = std::function<void(const FailResult&)>;

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
  virtual void report(const JobResult& result) = 0;
  /// Called from another thread when the worker must abort the running job now (TERM): reports
  /// the failure by a path that does not race the main thread, best effort, and the process exits
  /// right after. Returns false when the source knows the job was already reported (the main
  /// thread got there first): then nothing was sent and the worker should stop normally.
  virtual bool abortRunning(JobId job, const std::string& error) noexcept = 0;
  /// Clean shutdown: waits (bounded) for outstanding results to be durable, says goodbye.
  virtual void close() = 0;
  /// The worker's name as the server/database knows it.
  virtual const std::string& name() const = 0;
  /// Where decisions on this worker's failures go (see DecisionSink).
  void onDecision(DecisionSink sink) { m_onDecision = std::move(sink); }

 protected:
  void decided(const FailResult& r) const {
    if (m_onDecision) m_onDecision(r);
  }

 private:
  DecisionSink m_onDecision;
};

}  // namespace hostq::worker
