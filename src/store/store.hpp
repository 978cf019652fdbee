#pragma once
// The job store: every statement hostq sends to PostgreSQL, the server's batch driver included
// (internal: applications use hostq::Client, include/hostq/client.hpp). One Store = one libpq connection,
// used by one thread. Every statement is prepared once per connection; every time compared in
// SQL is the database clock (now()), never the caller's.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hostq/error.hpp"
#include "hostq/job.hpp"
#include "hostq/job_result.hpp"
#include "hostq/new_job.hpp"

namespace hostq {

/// One batched reservation for the waiting workers of one worker config (inst-jobs §3.1).
struct ReserveRequest {
  std::vector<std::string> worker_names;  ///< FIFO: row 1 goes to names[0], …
  std::string queue = "queue";
  int min_priority = kMinPriority;
  int max_priority = kMaxPriority;
  int prefetch = 0;            ///< extra rows locked by prefetch_owner
  std::string prefetch_owner;  ///< required when prefetch > 0
  std::chrono::microseconds forced_latency{0};
  /// Only singleton jobs (the server's held-lock mode claims everything else without writing,
  /// but a singleton's uniqueness is keyed on its written lock).
  bool singletons_only = false;
  /// Held-lock claims: only rows after this (priority, run_at, id) key, in claim order.
  struct Key {
    int priority = 0;
    TimePoint run_at{};
    JobId id = 0;
  };
  std::optional<Key> after;
};

struct ReserveResult {
  /// (worker name, job), in the order of worker_names; fewer entries when fewer jobs exist.
  std::vector<std::pair<std::string, Job>> assigned;
  /// Jobs locked by the prefetch owner, in (priority, run_at, id) order.
  std::vector<Job> prefetched;
};

/// A job id together with the locked_by the caller believes it has: every batched write is a
/// compare-and-set on it.
struct OwnedJob {
  JobId id = 0;
  std::string locked_by;
};

struct LockTransfer {
  JobId id = 0;
  std::string from;
  std::string to;
};

/// Which jobs of a batch the statement applied to and which did not match (gone, or locked_by
/// changed behind our back).
struct BatchResult {
  std::vector<JobId> applied;
  std::vector<JobId> mismatched;
};

struct Failure {
  JobId id = 0;
  std::string locked_by;
  std::string error;
  /// Reschedule time instead of now + attempts^4 + 5 s.
  std::optional<TimePoint> run_at;
  /// false = inst-jobs' `:unlock` from on_failure: do not count this attempt.
  bool count_attempt = true;
  /// true = fail permanently now regardless of attempts (e.g. expired).
  bool permanent = false;

  /// A worker's failure, written if the row is still locked by `locked_by`.
  static Failure of(const JobResult& r, std::string locked_by) {
    return Failure{r.id, std::move(locked_by), r.error, r.run_at, r.count_attempt, r.permanent};
  }
};

struct StoreOptions {
  /// On permanent failure move the row to failed_jobs (default) or delete it (inst-jobs' default).
  bool keep_failed_jobs = true;
  int default_max_attempts = 1;
  std::chrono::seconds stranded_run_at_grace{10};
  /// Reconnect attempts with backoff on a lost connection before a DbError reaches the caller.
  int reconnect_attempts = 5;
  /// search_path to set on connect (tests give each case its own schema); empty = server default.
  std::string schema;
  std::string application_name = "hostq";
  /// Plan joins as nested loops only (enable_hashjoin/enable_mergejoin off for the session), for
  /// the server's reservation and result connections. Their statements join a batch (a CTE of
  /// 2,000 rows, or unnest of the batch's arrays) to delayed_jobs by primary key; once autoanalyze
  /// sees a shrinking table the planner prefers a hash join over a sequential scan of all of it:
  /// measured 130-149 ms per 2,000-row reservation instead of 35-48 ms.
  bool nested_loop_joins = false;
  /// PostgreSQL's idle_in_transaction_session_timeout for the session (0 = the server's
  /// default). The server's held-lock batch connections set it well above their batch bound, so
  /// a server that stops mid-batch without closing its connection gives its claims back anyway.
  std::chrono::milliseconds idle_in_transaction_timeout{0};
};

struct QueueCount {
  std::string queue;
  std::int64_t queued = 0;   ///< unlocked, runnable now
  std::int64_t future = 0;   ///< unlocked, run_at later
  std::int64_t blocked = 0;  ///< unlocked, not next in strand
  std::int64_t running = 0;  ///< locked by a worker
  std::int64_t prefetched = 0;
  std::int64_t on_hold = 0;
  std::int64_t failed = 0;
};

enum class ListFlavor { Current, Future, Running, Failed, Strand, Tag };

class Store {
 public:
  /// Connects (libpq URL or key=value string; empty = libpq defaults). Throws DbError.
  static std::unique_ptr<Store> connect(const std::string& url, StoreOptions options = {});
  virtual ~Store() = default;

  // --- schema -------------------------------------------------------------------------------
  /// Creates or upgrades the schema; returns the number of migrations applied (0 = no-op).
  /// Throws SchemaTooNewError, touching nothing, if the database is ahead of this binary.
  virtual int migrate() = 0;
  virtual int schemaVersion() = 0;       ///< 0 when the schema is absent
  static int latestSchemaVersion();

  // --- enqueue --------------------------------------------------------------------------------
  virtual Enqueued enqueue(const NewJob& job) = 0;             ///< throws ValidationError
  virtual std::vector<Enqueued> enqueueMany(std::span<const NewJob> jobs) = 0;  ///< one transaction
  /// Fast path for many plain jobs (no strand/singleton): COPY. Returns the count inserted.
  virtual std::size_t enqueueBulk(std::span<const NewJob> jobs) = 0;

  // --- the hot path: one statement per batch ------------------------------------------------
  virtual ReserveResult reserve(const ReserveRequest& request) = 0;
  virtual BatchResult transferLocks(std::span<const LockTransfer> transfers) = 0;
  virtual BatchResult complete(std::span<const OwnedJob> jobs) = 0;  ///< delete, CAS on locked_by
  virtual BatchResult unlock(std::span<const OwnedJob> jobs) = 0;    ///< plain unlock, no attempt
  virtual std::vector<FailResult> fail(std::span<const Failure> failures) = 0;

  // --- recovery and maintenance --------------------------------------------------------------
  /// Reschedules ("process died", an attempt) jobs locked by `host:pid` names of this host
  /// whose pid is dead (or only `pid` if given). Returns the count handled.
  virtual int unlockOrphanedJobs(const std::string& host, std::optional<int> pid = std::nullopt) = 0;
  /// Reschedules jobs locked by exactly these names (the server knows they died).
  virtual int rescheduleLockedBy(std::span<const std::string> names, const std::string& error) = 0;
  /// Plain unlock of every job locked by `name` (a worker's cleanup, or `prefetch:HOST` at start).
  virtual int clearLocks(const std::string& name) = 0;
  /// How many jobs `name` holds.
  virtual std::int64_t countLockedBy(const std::string& name) = 0;
  /// Global purge of prefetch locks older than `older_than` under the advisory try-lock (§3.6).
  /// Returns nullopt when another process holds the lock.
  virtual std::optional<int> unlockOrphanedPrefetchedJobs(std::chrono::seconds older_than) = 0;
  virtual int hold(std::span<const JobId> ids) = 0;
  virtual int unhold(std::span<const JobId> ids) = 0;
  /// Requeues a failed job (from failed_jobs); returns the new job's id.
  virtual JobId requeueFailed(JobId failed_id) = 0;
  virtual std::optional<Job> find(JobId id) = 0;
  virtual std::optional<Job> findFailed(JobId original_or_failed_id) = 0;
  virtual std::vector<Job> list(ListFlavor flavor, const std::string& queue_or_name, int limit = 100,
                                int offset = 0) = 0;
  virtual std::vector<QueueCount> counts() = 0;
  /// True when at least one job is runnable now (unlocked, next in strand, run_at <= now) for
  /// this queue and priority range.
  virtual bool hasRunnable(const std::string& queue, int min_priority, int max_priority) = 0;

  // --- wake-ups --------------------------------------------------------------------------------
  /// LISTEN on the channel that enqueue triggers NOTIFY (`hostq_jobs`).
  virtual void listen() = 0;
  /// Reads pending notifications without blocking; returns how many arrived.
  virtual int drainNotifications() = 0;
  /// The connection's socket, for an event loop to wait on. -1 if not connected.
  virtual int socket() const = 0;

  // --- plumbing --------------------------------------------------------------------------------
  /// Runs a statement with no result rows of interest (tests, maintenance).
  virtual void exec(const std::string& sql) = 0;
  /// Statements sent since connect (for the statements-per-job figure).
  virtual std::uint64_t statementsExecuted() const = 0;
  /// Drops and re-establishes the connection (after a ConnectionLost error).
  virtual void reconnect() = 0;
  /// One round trip that reads nothing, without retrying (health checks). Throws DbError.
  virtual void ping() = 0;
  virtual bool connected() const = 0;
};

}  // namespace hostq
