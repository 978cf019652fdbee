#pragma once
// A throwaway PostgreSQL cluster for `hostq demo` and `hostq bench` when no database is given:
// initdb into a fresh temporary directory, a server listening on a Unix socket in that directory
// only (no TCP), every durability setting at its default (fsync on), so figures measured against
// it mean something. The C++ twin of scripts/pg.sh.
//
// Lifetime: the cluster is stopped (`pg_ctl -m fast`) and its directory removed by stop() or the
// destructor, also when start() fails halfway. pg_ctl puts the server in its own session, so a
// Ctrl-C at the terminal reaches only us: a caller that handles SIGINT/SIGTERM should call
// stop() (or unwind) on its way out. A SIGKILLed caller leaves the server and its directory
// behind (`pg_ctl -D DIR/data stop; rm -r DIR`).
#include <memory>
#include <string>

namespace hostq {

class EmbeddedPostgres {
 public:
  struct Options {
    /// Parent of the cluster's directory. Keep it short: the socket path inside must stay
    /// under the 107-byte sun_path limit.
    std::string parent_dir = "/tmp";
    int max_connections = 300;
  };

  /// initdb + `pg_ctl -w start`. When running as root, initdb and the server run as the
  /// `postgres` system user (PostgreSQL refuses root). Throws std::runtime_error naming the step
  /// and quoting the end of its log.
  static std::unique_ptr<EmbeddedPostgres> start(const Options& options);
  static std::unique_ptr<EmbeddedPostgres> start() { return start(Options{}); }

  /// The directory holding initdb's binaries: `pg_config --bindir` if it has initdb, else the
  /// newest /usr/lib/postgresql/*/bin; empty when there is none.
  static std::string findBinDir();

  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;
  ~EmbeddedPostgres();

  /// Stops the server (fast shutdown; immediate if that fails) and removes the directory.
  /// Idempotent; never throws.
  void stop() noexcept;

  /// libpq URL of the `postgres` database as the `postgres` superuser, over the socket.
  const std::string& url() const noexcept { return m_url; }
  /// The cluster's directory (data/, the socket, initdb.log, server.log); empty after stop().
  const std::string& dir() const noexcept { return m_dir; }

 private:
  EmbeddedPostgres() = default;

  std::string m_bin;
  std::string m_dir;
  std::string m_url;
  bool m_asPostgresUser = false;
  unsigned m_uid = 0;
  unsigned m_gid = 0;
};

}  // namespace hostq
