#pragma once
// The library form of the operator's verbs, for applications that enqueue and inspect jobs:
// enqueue (one, many in one transaction, bulk), find, list and count with a selector, hold,
// unhold, requeue, destroy, and the schema migration. Workers and the server are not needed for
// any of it; jobs enqueued here are run by whichever hosts serve their queue.
//
//   hostq::Client client({.database_url = hostq::resolveDatabaseUrl("")});
//   client.migrate();
//   auto job = client.enqueue({.tag = "mail.send", .payload = R"({"to":42})", .queue = "mail"});
//
// Errors: a job or argument the job system refuses throws ValidationError, before anything is
// written; a database failure throws DbError, classified by what the caller should do
// (hostq/error.hpp). Every write is its own transaction unless a method says otherwise.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hostq/error.hpp"
#include "hostq/job.hpp"
#include "hostq/job_selector.hpp"
#include "hostq/job_state.hpp"
#include "hostq/new_job.hpp"

namespace hostq {

struct ClientOptions {
  /// libpq URL or key=value string; empty = libpq's defaults (PGHOST, PGDATABASE, …).
  /// resolveDatabaseUrl("") (hostq/config.hpp) applies hostq's HOSTQ_DATABASE_URL first.
  std::string database_url{};
  /// search_path of every connection; empty = the server's default. migrate() creates it.
  std::string schema{};
  std::string application_name = "hostq-client";
  /// max_attempts of a job that gives none; >= 1 (the constructor checks).
  int default_max_attempts = 1;
  /// Reconnect attempts with backoff on a lost connection before a DbError reaches the caller
  /// (enqueue, find, requeue, migrate; the selection statements retry a lost connection three
  /// times); >= 0 (the constructor checks).
  int reconnect_attempts = 5;
};

/// A delayed_jobs row and its state.
struct ListedJob {
  Job job;
  JobState state = JobState::Queued;
};

/// One client = at most two PostgreSQL connections (one for enqueue/find/requeue/migrate, one for
/// selections), each opened on first use and reopened after a lost connection. Not thread-safe:
/// use one Client per thread. Movable; a moved-from Client may only be destroyed or assigned to
/// (any other call throws std::logic_error).
class Client {
 public:
  /// Opens no connection yet. Throws ValidationError when an option breaks its rule above.
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // --- schema -----------------------------------------------------------------------------------
  /// Creates the schema named in the options if it does not exist, then creates or upgrades the
  /// tables; returns the number of migrations applied (0 = already current). Safe to run
  /// concurrently from several processes. Throws SchemaTooNewError, touching nothing, when the
  /// database is ahead of this library.
  int migrate();
  /// The schema version of the database; 0 when the tables do not exist.
  int schemaVersion();
  /// The version migrate() brings a database to.
  static int latestSchemaVersion();

  // --- enqueue ----------------------------------------------------------------------------------
  /// One job (NewJob's rules apply). A singleton that is queued already is Updated or Dropped
  /// according to on_conflict.
  Enqueued enqueue(const NewJob& job);
  /// Many jobs in one transaction: all or none. Results in the order of `jobs`. Every job is
  /// checked before anything is sent.
  std::vector<Enqueued> enqueueMany(std::span<const NewJob> jobs);
  /// Many jobs in one transaction, the plain ones (no strand, n_strand or singleton) by COPY: the
  /// fastest way in, but no ids come back. Returns how many jobs were given to the database (a
  /// dropped singleton counts too).
  std::size_t enqueueBulk(std::span<const NewJob> jobs);
  /// `count` (>= 1) copies of one plain job (no strand, n_strand or singleton: ValidationError
  /// otherwise) in one statement; returns their ids in ascending order.
  std::vector<JobId> enqueueCopies(const NewJob& job, std::int64_t count);

  // --- inspect ----------------------------------------------------------------------------------
  /// The delayed_jobs row of `id` (queued, running, held, …); nullopt when there is none (it
  /// completed, failed for good, or never existed).
  std::optional<Job> find(JobId id);
  /// The failed_jobs row whose original job id is `id`, else the failed_jobs row with id `id`.
  std::optional<Job> findFailed(JobId id);
  /// delayed_jobs rows matching `selector` (empty = all) in `state` (nullopt = any live state):
  /// runnable ones by id, then future ones by run_at; at most `limit` (>= 1). One snapshot.
  /// JobState::Failed is refused (ValidationError): failed jobs are listFailed's.
  std::vector<ListedJob> list(const JobSelector& selector = {}, std::optional<JobState> state = std::nullopt,
                              int limit = 100);
  /// failed_jobs rows matching `selector` (its ids are failed_jobs ids), newest first; at most
  /// `limit` (>= 1).
  std::vector<Job> listFailed(const JobSelector& selector = {}, int limit = 100);
  /// Jobs per key and state over the jobs matching `selector` (empty = all), by key; jobs without
  /// the key (no strand) are left out.
  std::vector<GroupCount> counts(CountBy by = CountBy::Queue, const JobSelector& selector = {});

  // --- operate ----------------------------------------------------------------------------------
  /// inst-jobs' hold!: the selected jobs that no worker or server holds stop being run. Returns
  /// how many were held. An empty selector is refused (ValidationError).
  int hold(const JobSelector& selector);
  /// Releases held jobs of the selection: attempts 0, runnable now if due. Returns the count.
  /// An empty selector is refused (ValidationError).
  int unhold(const JobSelector& selector);
  /// Puts a failed job back in the queue as a new job (attempts kept); returns the new job's id.
  /// `id` is read as findFailed reads it. Throws ValidationError when there is no such failed job.
  JobId requeue(JobId id);
  /// Deletes the selected jobs that nobody runs (queued, future, blocked, held), through the
  /// table's triggers: the next job of a strand or singleton becomes runnable. Returns the count.
  /// An empty selector is refused (ValidationError).
  int destroy(const JobSelector& selector);
  /// Deletes the selected failed_jobs rows (ids are failed_jobs ids). Returns the count. An
  /// empty selector is refused (ValidationError).
  int destroyFailed(const JobSelector& selector);
  /// Deletes failed_jobs rows that failed more than `older_than` (>= 0) ago, in bounded batches.
  /// Returns the count.
  std::int64_t cleanupFailed(std::chrono::seconds older_than);

 private:
  struct Impl;
  Impl& impl();
  std::unique_ptr<Impl> m_impl;
};

}  // namespace hostq
