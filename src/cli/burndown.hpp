#pragma once
// The burn-down machinery behind `hostq demo` and `hostq bench`: a database (given, or a private
// EmbeddedPostgres), a schema, N no-op jobs enqueued in bulk (not timed), then a farm forked via
// runPool (or K farms, one per simulated host, all burning down the same jobs), timed from the
// fork to the moment a separate connection sees no row left in delayed_jobs. Around the run it
// reads what the farm cost: server stats, CPU of every process from /proc, PostgreSQL's
// transaction counter, the database connections each host held, peak RSS.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/verbs.hpp"
#include "common/latency_histogram.hpp"
#include "hostq/config.hpp"

namespace hostq {
class EmbeddedPostgres;
}

namespace hostq::cli::burndown {

/// SIGINT/SIGTERM arrived: thrown at the next check so destructors stop the farm and the
/// throwaway PostgreSQL.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

/// Installs SIGINT/SIGTERM handlers that only set a flag (checked by every loop here).
void installStopSignals();
bool stopRequested() noexcept;
void throwIfStopped();

/// The job-gap histogram while the farm runs: LatencyHistogram's buckets, atomic, in a
/// MAP_SHARED page that the forked workers write into.
struct SharedHistogram {
  std::atomic<std::uint64_t> buckets[LatencyHistogram::kBuckets];

  void record(std::uint64_t ns) noexcept {
    buckets[LatencyHistogram::indexOf(ns)].fetch_add(1, std::memory_order_relaxed);
  }
  void reset() noexcept;
  LatencyHistogram snapshot() const noexcept;
};

/// Percentile `q` of `h` in microseconds; nullopt when empty.
std::optional<double> percentileUs(const LatencyHistogram& h, double q) noexcept;

/// The database of a burn-down: the given URL, else a private throwaway cluster. Owns a schema
/// (the given one, or hostq_bench_<pid>, dropped at the end when we created it on a database we
/// do not own).
class Database {
 public:
  /// `say` gets progress messages (starting PostgreSQL…). Throws on failure.
  Database(const CommonOptions& common, const std::function<void(const std::string&)>& say);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& url() const noexcept { return m_url; }
  const std::string& schema() const noexcept { return m_schema; }
  bool embedded() const noexcept { return m_embedded != nullptr; }
  /// Where the throwaway cluster lives ("" when given a database).
  std::string embeddedDir() const;
  /// Stops the throwaway cluster / drops our schema now (also done by the destructor).
  void close() noexcept;

 private:
  std::unique_ptr<EmbeddedPostgres> m_embedded;
  std::string m_url;
  std::string m_schema;
  bool m_dropSchema = false;
};

/// One burn-down to run.
struct RunConfig {
  Transport transport = Transport::Shm;
  int workers = 4;
  std::int64_t jobs = 200'000;
  int payload_bytes = 0;
  int sleep_ms = -1;  ///< < 0: hostq.noop; else hostq.sleep with this many ms
  /// Non-empty: hostq.append jobs writing "ID HOST:PID" lines to this file (a record of every
  /// run, for tests that count runs per job); sleep_ms is then ignored.
  std::string append_file;
  /// Simulated hosts: farms of `workers` each, with their own hostname, socket and server, on
  /// the same database and jobs. 1 = one farm with the default hostname.
  int hosts = 1;
  /// --hostname: a single host's name, or the stem of the simulated hosts' names ("" = the
  /// default hostname / "benchhost").
  std::string hostname_stem;
  int held_batches = -1;  ///< the server's held-lock batch channels; < 0: its default
  int held_max_hosts = -1;  ///< the server's held_max_hosts; < 0: its default
  int worker_nice = -1;   ///< WorkerSettings::nice; < 0: its default
  int jobs_per_request = 0;  ///< WorkerSettings::jobs_per_request; 0: its default
  std::chrono::milliseconds batch_max_open{0};  ///< the server's batch bound; 0: its default
  std::string handlerName() const;
  std::string label() const;  ///< "shm x4", "shm x4 on 16 hosts"
  /// The hostname of simulated host `i` (0-based): the stem for a single host ("" = the
  /// default), else "<stem>-<i+1>" (benchhost-1, …).
  std::string hostname(int i) const;
};

/// What one simulated host did in a run (server stats and /proc of its farm; the connections
/// pg_stat_activity showed with its hostname as the last word of their application_name).
struct HostResult {
  std::string hostname;
  std::optional<double> jobs;  ///< the server's jobs_completed + jobs_failed
  std::optional<double> jobs_per_second;  ///< jobs / the run's wall time
  std::optional<double> db_connections_peak;
  std::optional<double> db_statements, db_statements_per_job;  ///< per job of this host
  std::optional<double> cpu_server_us_per_job, cpu_workers_us_per_job;  ///< per job of this host
  std::optional<double> handoff_p50_us, handoff_p99_us;
};

/// What one run measured. Optional = not applicable to this transport (or could not be read),
/// printed as null.
struct RunResult {
  RunConfig config;
  int repeat = 0;
  double elapsed_s = 0;
  double jobs_per_second = 0;
  std::optional<double> startup_ms;  ///< fork → first job gone from the table
  std::optional<double> db_statements;   ///< hostq's own count (server stats)
  std::optional<double> db_statements_per_job;
  std::string db_statements_source;  ///< "server_stats" | "xact_commit"
  std::optional<double> xact_commit_delta;  ///< the farm's committed transactions (pg_stat_database)
  std::optional<double> xact_commit_per_job;
  std::optional<double> cpu_server_us_per_job;
  std::optional<double> cpu_workers_us_per_job;
  std::optional<double> cpu_postgres_us_per_job;
  /// Server stats; with several hosts, these percentiles (and enqueue_to_start's, and the held
  /// batches' open times) are the worst host's: percentiles of different servers do not merge.
  std::optional<double> handoff_p50_us, handoff_p99_us, handoff_p999_us;
  std::optional<double> handoff_count;  ///< requests of waiting workers the percentiles cover
  std::optional<double> handoff_ahead_p50_us, handoff_ahead_p99_us;  ///< requests sent ahead
  std::optional<double> enqueue_to_start_p50_us, enqueue_to_start_p99_us, enqueue_to_start_p999_us;
  std::optional<double> gap_p50_us, gap_p99_us, gap_p999_us;  ///< worker side: end of job → start of next
  std::optional<double> server_peak_rss_kb;
  std::optional<double> worker_peak_rss_kb;  ///< the largest worker's
  std::optional<double> reservations, max_batch;
  /// Fairness across workers (server stats' per-worker "jobs"; null for direct): the fewest and
  /// most jobs one worker did, how many did any, and (N/W)/min n_i: the least served worker's
  /// mean interval between jobs over the farm's (+∞ when a worker did none). cli/fairness.hpp.
  std::optional<double> fairness_min_jobs, fairness_max_jobs, fairness_worst_gap_ratio, workers_served;
  /// Held-lock batches (server stats "held_batches"): closed, open time p50 / p99, jobs handed out
  /// per batch (mean), jobs promoted to a written lock at the bound.
  std::optional<double> held_batches, held_open_ms_p50, held_open_ms_p99, held_jobs_per_batch, held_promotions;
  /// The most backends the run's hosts held at once (sampled every 50 ms during the burn-down).
  std::optional<double> db_connections_peak;
  std::vector<HostResult> per_host;  ///< one per simulated host, in order
  double load_1m = 0;  ///< /proc/loadavg when the run started
  LatencyHistogram gap;  ///< the worker-side hand-off histogram
  std::string stats_json;  ///< the server's, raw ("" for direct)
  std::string error;       ///< set when the run failed (e.g. timed out); the figures are then meaningless
};

/// Progress of a burn-down: a redrawn line on a terminal, plain lines every `plain_every_s`
/// otherwise. Writes to stderr.
class Progress {
 public:
  Progress(std::string label, std::int64_t total, bool enabled, double plain_every_s = 1.0);
  void update(std::int64_t done, double elapsed_s);
  void finish(std::int64_t done, double elapsed_s);

 private:
  void draw(std::int64_t done, double elapsed_s, bool final);
  std::string m_label;
  std::int64_t m_total;
  bool m_enabled;
  bool m_tty;
  double m_plainEvery;
  double m_lastDraw = -1e9;
  std::size_t m_lastWidth = 0;
};

/// Runs burn-downs against one Database: enqueue, vacuum, farm, measure, stop.
class Runner {
 public:
  explicit Runner(Database& db);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  /// Creates the schema (if needed) and migrates.
  void migrate();
  /// Enqueues `config.jobs` jobs in bulk and VACUUM ANALYZEs delayed_jobs. Returns seconds taken.
  double prepare(const RunConfig& config);
  /// Starts the farm, waits until delayed_jobs is empty, measures, stops the farm.
  RunResult run(const RunConfig& config, bool show_progress, const std::string& progress_label,
                std::chrono::seconds timeout);
  /// After a failed run: stops the farm (fast) and deletes the jobs it left, so the next run
  /// starts from an empty table.
  void discard();

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

/// "200,000"
std::string thousands(double v);

}  // namespace hostq::cli::burndown
