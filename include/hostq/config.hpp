#pragma once
// Settings of a hostq deployment: what `hostq pool`, `hostq server` and `hostq worker` read from
// the YAML file (in the spirit of inst-jobs' delayed_jobs.yml) and from their flags.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hostq/worker_config.hpp"

namespace hostq {

enum class Transport { Shm, Socket, Direct };

const char* toString(Transport t) noexcept;
/// "shm" | "socket" | "direct"; nullopt otherwise.
std::optional<Transport> parseTransport(const std::string& s) noexcept;

/// A job enqueued on a cron schedule (YAML `periodic_jobs:` entry). Each tick is the singleton
/// `periodic: NAME`, so however many servers carry the same list, one job per tick is enqueued.
struct PeriodicJob {
  std::string name;  ///< unique within the list
  std::string cron;  ///< 5 fields, or 6 with seconds first; UTC
  std::string tag;   ///< the handler
  std::string payload;
  std::string queue = "queue";
  int priority = 10;
  std::optional<int> max_attempts;  ///< default: the server's default_max_attempts
};

/// The server's settings (YAML key `server:`).
struct ServerSettings {
  std::string socket_path;  ///< empty = default (HOSTQ_SOCKET, else $XDG_RUNTIME_DIR or /tmp)
  std::string hostname;     ///< empty = gethostname(); the host part of `host:pid` and `prefetch:host`
  int fetch_batch_size = 5;        ///< inst-jobs: reserve fetch_batch_size × workers per group
  int max_batch = 2000;            ///< upper bound of one reservation (the batch grows with backlog)
  std::chrono::milliseconds prefetched_jobs_timeout{30'000};
  std::chrono::milliseconds flush_delay{2};  ///< max delay before results are written
  int flush_batch = 1000;                    ///< results that force a flush
  std::chrono::milliseconds poll_interval{1000};  ///< safety-net poll when LISTEN says nothing
  bool forced_latency = false;  ///< inst-jobs' idle-host latency (multi-host farms)
  std::chrono::milliseconds forced_latency_amount{6000};
  std::chrono::minutes orphan_purge_interval{15};
  int max_workers = 256;  ///< shared-memory slots; more workers fall back to the socket
  int max_connections = 4096;
  std::uint32_t max_frame_bytes = 4u << 20;
  std::chrono::milliseconds read_timeout{10'000};  ///< a started frame must finish within this
  std::string allowed_group;                        ///< group allowed besides our uid; empty = none
  bool keep_failed_jobs = true;  ///< permanent failures go to failed_jobs (else deleted)
  int default_max_attempts = 1;
  std::string idle_hook;  ///< command run on idle/busy transitions ($HOSTQ_IDLE=1|0); empty = none
  /// After a restart, how long to wait for workers to reconnect and claim the jobs they hold
  /// before releasing this host's stale prefetch locks (skipped when there are none).
  std::chrono::milliseconds restart_grace{3000};
  /// A live worker whose connection dropped keeps its jobs this long for it to register again
  /// and report them; a worker that died (or did not come back) has them rescheduled.
  std::chrono::milliseconds reconnect_grace{5000};
  /// Held-lock batch channels (connections that each hold one claim transaction open): the
  /// claim writes nothing (docs/server.md). 0 = every claim writes its lock, as inst-jobs does.
  int held_batches = 3;
  /// Held-lock claims only while at most this many hosts are live (heartbeats in hostq_hosts);
  /// beyond, written-lock claims: a host's held rows read unlocked, so every other host's claim
  /// walks and skips them, and that cost grows with the number of hosts (docs/performance.md,
  /// "Scale-out on one database"). 0 = held-lock claims whatever the number of hosts.
  int held_max_hosts = 4;
  /// The longest a held-lock batch stays open: then its running jobs are promoted to written
  /// locks and the rest is committed. Bounds the transaction's age (vacuum horizon).
  std::chrono::milliseconds batch_max_open{200};
  /// HOST:PORT of the HTTP endpoint (metrics, health, stats, dashboard); empty = off.
  std::string http_listen;
  /// A host whose server has not written its heartbeat for this long is dead: any live server
  /// reschedules its jobs (an attempt) and releases its prefetched ones. 0 = never declare one.
  std::chrono::milliseconds host_timeout{60'000};
  /// The periodic jobs this server keeps scheduled (top-level `periodic_jobs:` of the file).
  std::vector<PeriodicJob> periodic_jobs;
};

/// One worker entry (YAML `workers:` list item, top-level keys merged in).
/// The most jobs one request may take (the protocol's limit; a worker asks for fewer while its
/// jobs are not short).
inline constexpr int kMaxJobsPerRequest = 256;

struct WorkerSettings {
  WorkerConfig config;  ///< queue, priorities, workers count, extra keys (the grouping key)
  Transport transport = Transport::Shm;
  std::int64_t max_job_count = 0;       ///< 0 = unlimited
  std::int64_t memory_high_water = 0;   ///< bytes of RSS; 0 = none
  bool builtin_handlers = false;        ///< hostq.noop/sleep/fail/crash/append
  /// Added to the worker's nice value at start (0…19): the host's server, which dispatches for
  /// every worker, keeps the CPU first when workers and PostgreSQL contend for it. Measured on 2
  /// cores (docs/performance.md, same-run pairs): +5 took the workers' CPU per job from 4.1–5.85
  /// to 2.6–3.8 µs and the hand-off p99 from 66–82 to 53–61 µs. 0 leaves the worker at its
  /// parent's priority.
  int nice = 5;
  /// Most jobs a shared-memory worker takes in one request (1…256) while its jobs are short (it
  /// asks for enough to cover 100 µs of its work): the futex wake and context switches of a
  /// hand-off are paid once per request (docs/server.md, "Several jobs per request"). 1 = one
  /// job per request: for a queue whose job lengths vary so much that a job may wait behind a
  /// long one in a worker's queue while another worker is idle.
  int jobs_per_request = kMaxJobsPerRequest;
};

struct PoolSettings {
  std::string database_url;  ///< empty = HOSTQ_DATABASE_URL, else libpq defaults
  ServerSettings server;
  std::vector<WorkerSettings> workers;
  std::chrono::milliseconds slow_exit_timeout{20'000};
  bool process_titles = true;
  /// inst-jobs settings the file gave that hostq accepts without an equivalent, one line each
  /// ("FILE:LINE: key: ignored: why"); the verbs print them at start.
  std::vector<std::string> warnings;
};

/// Loads and validates a YAML file; unknown keys and bad values throw ValidationError naming the
/// key and the file. Top-level keys other than the pool's own settings are defaults merged into
/// each worker entry. A file of environment sections (inst-jobs' delayed_jobs.yml) is read at the
/// section `environment` (empty = resolveEnvironment("")), else at `default`.
PoolSettings loadPoolSettings(const std::string& path, const std::string& environment = "");
/// The same from a YAML string (tests).
PoolSettings parsePoolSettings(const std::string& yaml, const std::string& origin = "<string>",
                               const std::string& environment = "");
/// The config section to read: explicit, else $HOSTQ_ENV, else $RAILS_ENV, else "production".
std::string resolveEnvironment(const std::string& explicit_name);

/// Resolves the socket path: explicit, else $HOSTQ_SOCKET, else $XDG_RUNTIME_DIR/hostq/hostq.sock,
/// else /tmp/hostq-<uid>/hostq.sock.
std::string resolveSocketPath(const std::string& explicit_path);
/// Resolves the database URL: explicit, else $HOSTQ_DATABASE_URL, else "" (libpq defaults).
std::string resolveDatabaseUrl(const std::string& explicit_url);
/// gethostname(), or the override.
std::string resolveHostname(const std::string& explicit_name);

}  // namespace hostq
