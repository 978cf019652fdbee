#pragma once
// The host's work-queue server: one process; these threads, plus the reservation runner, the
// result writer (docs/server.md) and the host monitor (host_monitor.hpp: heartbeat, dead hosts,
// periodic jobs).
//  - loop thread (the caller of run()): owns the Reserver and every job; drains the shared-memory
//    rings, the control inbox and the LISTEN flag, sleeps on the segment's doorbell futex.
//  - control thread: Asio, socket I/O only; posts events to the loop's inbox and rings the
//    doorbell.
//  - listener thread: LISTEN on its own connection; on NOTIFY sets a flag and rings the doorbell.
#include <string>

#include "hostq/config.hpp"

namespace hostq::server {

struct ServerOptions {
  ServerSettings settings;
  std::string database_url;
  std::string schema;  ///< search_path (tests)
  int parent_pid = 0;  ///< exit when this process (the pool) dies; 0 = standalone
};

/// Runs the server until INT, TERM or QUIT (all graceful: stop reserving, flush every pending
/// result, give back prefetched jobs) or until the parent dies. Returns the exit code.
int runServer(const ServerOptions& options);

}  // namespace hostq::server
