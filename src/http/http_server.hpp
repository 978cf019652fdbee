#pragma once
// The server's HTTP endpoint (off unless `--http` / `server.http_listen`): GET /metrics,
// /healthz, /api/stats, /api/dashboard and the dashboard page at /. Boost.Beast on the control
// plane's io_context: HTTP work is socket I/O plus rendering a snapshot, like the control
// socket's; the server's loop only publishes snapshots (StatsBoard) and is never asked anything.
// The database work (health ping, job counts) runs on DbProbe's own thread and connection.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "http/listen_address.hpp"
#include "server/stats_snapshot.hpp"

namespace boost::asio {
class io_context;
}

namespace hostq::http {

struct HttpOptions {
  ListenAddress listen;
  std::string database_url;
  std::string schema;
  /// Connections beyond this get a 503 and are closed.
  std::size_t max_connections = 64;
  /// A request must arrive whole within this after the connection opened or the previous answer
  /// went out (slow and idle clients alike); an answer must be taken within it too.
  std::chrono::milliseconds request_timeout{10'000};
  std::size_t max_header_bytes = 8 * 1024;  ///< request line + headers; beyond: 431
  std::size_t max_body_bytes = 4 * 1024;    ///< nothing here takes a body; beyond: 413
  /// A snapshot older than this means the server's loop is stuck: /healthz says 503.
  std::chrono::milliseconds stale_after{5'000};
  std::chrono::milliseconds ping_interval{1'000};
  std::chrono::milliseconds counts_interval{5'000};
};

/// Setup failure: the address does not resolve or cannot be bound.
class HttpSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class HttpServer {
 public:
  /// Resolves and binds now (throws HttpSetupError); serves nothing before start().
  HttpServer(boost::asio::io_context& io, HttpOptions options, const server::StatsBoard& board);
  ~HttpServer();  ///< stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Accepting, the jobs/s sampler and the database probe. The io_context must be running (or
  /// run later) on its own thread.
  void start();
  /// Closes the listener and every connection on the io thread and waits for that, then stops
  /// the probe. Idempotent. Call while the io thread still runs.
  void stop();
  /// "HOST:PORT" actually bound (the port is the kernel's choice when 0 was asked for).
  const std::string& address() const noexcept;

  struct Shared;  ///< what the io thread's handlers share with this object (outlives it)

 private:
  std::shared_ptr<Shared> m_shared;
};

}  // namespace hostq::http
