#pragma once
// The operator's statements (`hostq jobs/hold/unhold/destroy/cleanup` by tag, strand, queue or
// state; `enqueue --count` with ids): rare, one-shot, on their own connection, kept apart from the
// Store's hot-path statements. Selections go through the same triggers as the workers' writes, so
// destroying a job advances its strand like completing it would.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hostq/job_selector.hpp"
#include "hostq/job_state.hpp"
#include "store/store.hpp"
#include "store/pg_connection.hpp"

namespace hostq::store {

/// The rows of the job_counts statement (Store::counts reads them too).
std::vector<GroupCount> readCounts(const PgResult& result);

class AdminStore {
 public:
  /// Connects (throws DbError). `options` gives the schema and default_max_attempts.
  AdminStore(std::string url, StoreOptions options);

  /// `count` copies of a plain job (no strand, no singleton) in one INSERT … SELECT per call;
  /// returns their ids in ascending order. Unlike Store::enqueueBulk (COPY), the ids come back.
  std::vector<JobId> enqueueCopies(const NewJob& job, std::int64_t count);

  /// delayed_jobs rows matching `sel` and `state` (nullopt = any live state) with their state:
  /// runnable ones by id, then future ones by run_at, at most `limit`. One statement, one snapshot.
  std::vector<std::pair<Job, JobState>> list(const JobSelector& sel, std::optional<JobState> state, int limit);
  /// failed_jobs rows matching `sel` (ids are failed_jobs ids), newest first.
  std::vector<Job> listFailed(const JobSelector& sel, int limit);
  /// Counts per key over the jobs matching `sel`; rows without the key (no strand) are left out.
  std::vector<GroupCount> counts(CountBy by, const JobSelector& sel);

  /// inst-jobs' hold! over a selection: only unlocked jobs. Returns the count held.
  int hold(const JobSelector& sel);
  /// Releases held jobs of a selection (attempts 0, runnable now if due). Returns the count.
  int unhold(const JobSelector& sel);
  /// Deletes jobs that no worker or server holds (queued, future, blocked, held); with `failed`,
  /// failed_jobs rows instead. Returns the count deleted.
  int destroy(const JobSelector& sel, bool failed);
  /// Deletes failed_jobs rows that failed more than `older_than` ago, in batches. Returns the count.
  std::int64_t cleanupFailed(std::chrono::seconds older_than);

 private:
  PgResult run(const Statement& st, std::span<const Param> params, Phase phase);

  StoreOptions m_options;
  PgConnection m_conn;
};

}  // namespace hostq::store
