#pragma once
// A host's farm as a black box for the reliability suite (tests/stress/test_reliability_*):
// `hostq pool` (server + workers) run from the built binary (HOSTQ_BIN), with its own socket,
// schema and hostname, so tests run side by side under `ctest -j`. Helpers read the pool's
// children from /proc (process titles tell the server from the workers), ask
// `hostq stats --json`, and audit the append files that `hostq.append` jobs write
// ("ID WORKER-NAME\n" per execution) against the tables.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/db_fixture.hpp"
#include "support/farm.hpp"
#include "support/run_hostq.hpp"
#include "support/stats_json.hpp"
#include "support/wait.hpp"

namespace hostq::test::rel {

struct FarmOptions {
  std::string database_url;
  std::string schema;
  std::string hostname = "farm";
  int workers = 4;
  std::string restart_grace = "1s";
  std::string transport;           ///< empty: the default (shm)
  std::string config_file;         ///< --config, for settings without a flag
  std::vector<std::string> extra;  ///< more `hostq pool` flags
  std::string log_level = "info";
};

class Farm {
 public:
  /// Creates the farm's directory (socket + log); start() launches the pool.
  explicit Farm(FarmOptions options);
  ~Farm();  ///< stop()
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  /// Launches `hostq pool` in its own process group and waits (deadline) until the server
  /// answers stats with `workers` registered workers. False on timeout.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  /// QUIT (graceful) then, after `grace`, KILL of the whole process group. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  pid_t poolPid() const { return m_pool.pid(); }
  /// Current children of the pool by title ("hostq server" / "hostq worker").
  std::optional<pid_t> serverPid() const;
  std::vector<pid_t> workerPids() const;
  /// Waits until the pool has a server whose pid differs from `old` and that answers stats.
  std::optional<pid_t> waitNewServer(pid_t old, std::chrono::milliseconds timeout);
  /// Waits until `n` workers are registered with the server (per stats).
  bool waitWorkers(int n, std::chrono::milliseconds timeout);

  /// `hostq stats --json`, or nullopt when the server does not answer.
  std::optional<std::string> stats() const;

  const std::string& socket() const { return m_socket; }
  std::string dir() const { return m_dir.path().string(); }
  std::string logPath() const { return m_dir.file("pool.err"); }
  /// The pool's log (server and workers write to the same stderr).
  std::string log() const;
  /// `hostq` flags naming this farm's database, schema and socket.
  std::vector<std::string> common() const;

 private:
  FarmOptions m_o;
  ScratchDir m_dir;
  std::string m_socket;
  Proc m_pool;
};

/// Children of `parent` whose /proc/PID/comm equals `comm` (empty: any).
std::vector<pid_t> childrenOf(pid_t parent, const std::string& comm = "");
bool processAlive(pid_t pid);

/// One execution recorded by `hostq.append`.
struct AppendLine {
  std::int64_t id = 0;
  std::string worker;  ///< "HOST:PID"
};
std::vector<AppendLine> readAppendFile(const std::string& path);
std::size_t countLines(const std::string& path);

/// The audit of an append-job burn-down against the database.
struct Audit {
  std::size_t enqueued = 0;
  std::size_t ran_once = 0;
  std::size_t ran_twice_or_more = 0;       ///< ids with more than one line
  std::size_t in_delayed = 0;              ///< still in delayed_jobs (queued or rescheduled)
  std::size_t in_failed = 0;               ///< moved to failed_jobs (with a reason)
  std::size_t lost = 0;                    ///< none of the above
  std::size_t stuck_locked = 0;            ///< in delayed_jobs, locked by a process that is gone
  std::size_t unexplained_duplicates = 0;  ///< reruns whose earlier runs were not by killed workers
  std::size_t unknown_lines = 0;           ///< lines for ids never enqueued
  std::size_t failed_without_reason = 0;
  std::vector<std::string> problems;  ///< the first few, for the failure message
  std::string summary() const;
};

/// A side connection with search_path = schema. Reconnects once on a broken connection (tests
/// that restart PostgreSQL keep using it); throws std::runtime_error on an SQL error.
class Sql {
 public:
  Sql(std::string database_url, std::string schema);
  ~Sql();
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;
  /// Every row's first column ("NULL" for null).
  std::vector<std::string> column(const std::string& sql);
  /// First column of the first row ("" when there is no row).
  std::string value(const std::string& sql);
  std::int64_t integer(const std::string& sql);
  std::vector<std::int64_t> ids(const std::string& sql);

 private:
  void connect();
  std::string m_url, m_schema;
  std::unique_ptr<store::PgConnection> m_conn;
};

/// Checks every id in `enqueued` against the append lines and the schema's tables. A rerun is
/// explained when every execution but one was by a worker in `killed` (its "HOST:PID").
Audit audit(Sql& db, const std::vector<std::int64_t>& enqueued, const std::vector<AppendLine>& lines,
            const std::set<std::string>& killed);
/// The audit of a burn-down that killed nothing mid-job: every job ran exactly once, none was
/// lost or failed (gtest expectations, so every broken one is reported).
void expectEachRanOnce(const Audit& a, std::size_t jobs);

/// A DbTest (fresh migrated schema) with helpers for farms on that schema.
class FarmTest : public DbTest {
 protected:
  FarmOptions farmOptions(const std::string& hostname, int workers) const;
  /// `hostq enqueue TAG PAYLOAD --count N FLAGS…`; fails the test when it does not exit 0.
  /// Returns the new ids: the id sequence's range across the command (nothing else enqueues
  /// into a test's schema), since a running farm may consume jobs before they can be listed.
  std::vector<std::int64_t> enqueue(const std::string& tag, const std::string& payload, int count,
               const std::vector<std::string>& flags = {}) const;
  /// A started farm and `jobs` hostq.append jobs enqueued for it, appending to `file`.
  struct AppendBurn {
    std::unique_ptr<Farm> farm;
    std::string file;
    std::vector<std::int64_t> ids;
    bool ok() const { return farm && !ids.empty(); }
  };
  /// Starts the farm and enqueues; on failure reports it (gtest) and returns !ok().
  AppendBurn startAppendBurn(FarmOptions options, int jobs) const;
  /// Waits until delayed_jobs is empty.
  bool waitBurnDown(std::chrono::milliseconds timeout) const;
  std::int64_t remaining() const { return queryInt("SELECT count(*) FROM delayed_jobs"); }
  std::vector<std::int64_t> allIds() const;
};

/// The last id the schema's delayed_jobs sequence handed out (0 when none).
std::int64_t lastJobId(Sql& db);

}  // namespace hostq::test::rel
