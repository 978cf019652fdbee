#pragma once
// A pool: the host's server plus the workers of every worker config, as forked children, kept
// alive. The library form of `hostq pool`.
#include <string>

#include "hostq/config.hpp"
#include "hostq/handler_registry.hpp"
#include "hostq/worker.hpp"

namespace hostq {

struct PoolOptions {
  PoolSettings settings;
  std::string schema;  ///< search_path (tests)
  HandlerRegistry handlers;
  Hooks hooks;
  /// Run the server in this pool (default). false: the workers use a server started elsewhere.
  bool run_server = true;
};

/// Forks the server and the workers, restarts any that die (logging why), and shuts down on
/// signals: QUIT = graceful (workers finish their jobs, then the server flushes and exits),
/// TERM/INT = fast (running jobs are aborted and rescheduled); after slow_exit_timeout the pool
/// escalates to TERM, then KILL. Returns 0 after a clean shutdown.
int runPool(PoolOptions options);

}  // namespace hostq
