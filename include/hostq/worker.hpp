#pragma once
// A worker: a process that takes jobs from the host's server (shared memory or socket) or from
// the database directly, runs one at a time, and reports the result.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hostq/config.hpp"
#include "hostq/handler_registry.hpp"
#include "hostq/job.hpp"
#include "hostq/outcome.hpp"

namespace hostq {

/// Lifecycle hooks, in the spirit of inst-jobs' Delayed::Lifecycle (§4.5), typed.
/// Order: before_perform (registration order), around_perform (first registered is outermost),
/// the handler, after_perform.
struct Hooks {
  std::vector<std::function<void(const Job&)>> before_perform;
  std::vector<std::function<Outcome(const Job&, const std::function<Outcome()>& next)>> around_perform;
  std::vector<std::function<void(const Job&, const Outcome&)>> after_perform;
  /// A job failed (any failure).
  std::vector<std::function<void(const Job&, const std::string& error)>> on_error;
  /// A job failed and will be retried.
  std::vector<std::function<void(const Job&, const std::string& error)>> on_retry;
  /// The worker is exiting (exit code: 0 clean).
  std::vector<std::function<void(int exit_code)>> on_exit;
};

struct WorkerOptions {
  WorkerSettings settings;
  std::string socket_path;   ///< resolved with resolveSocketPath() when empty
  std::string database_url;  ///< direct transport only; resolveDatabaseUrl() when empty
  std::string hostname;      ///< host part of the worker name; resolveHostname() when empty
  std::string schema;        ///< search_path for the direct transport (tests)
  HandlerRegistry handlers;
  Hooks hooks;
  /// Direct transport only: the fail statement's max_attempts for rows without one, and where a
  /// permanent failure goes. Through a server, the server's settings decide.
  int default_max_attempts = 1;
  bool keep_failed_jobs = true;
  /// Exit when this pid stops being our parent (a pool); 0 = don't watch.
  int parent_pid = 0;
};

/// The worker's name ("host:pid") while a Worker runs in this process; empty otherwise.
const std::string& currentWorkerName() noexcept;

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Runs until told to stop. Signals: QUIT = finish the current job, then exit; TERM/INT =
  /// abort the current job (rescheduled, counting an attempt) and exit. Also exits after
  /// max_job_count jobs or when RSS passes memory_high_water. A server that goes away means
  /// reconnect, not exit. Returns the process exit code.
  int run();
  /// Asks run() to return after the current job (callable from any thread or a signal handler).
  void requestStop() noexcept;
  const std::string& name() const noexcept;
  std::uint64_t jobsRun() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace hostq
