#pragma once
// Where a job is in its life, as `hostq jobs` and Client::list report it.
#include <optional>
#include <string_view>

namespace hostq {

/// Failed is a row of failed_jobs; every other state is a delayed_jobs row.
enum class JobState {
  Queued,      ///< unlocked, runnable now
  Future,      ///< unlocked, run_at later
  Blocked,     ///< waiting for the job ahead of it in its strand
  Running,     ///< locked by a worker
  Prefetched,  ///< reserved by a host's server for its workers
  Held,        ///< on hold (Client::hold)
  Failed,      ///< failed for good, in failed_jobs
};

/// "queued", "future", "blocked", "running", "prefetched", "held", "failed".
const char* toString(JobState s) noexcept;
/// The inverse of toString; nullopt for anything else.
std::optional<JobState> parseJobState(std::string_view s) noexcept;

}  // namespace hostq
