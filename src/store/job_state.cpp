// The names of the public job states and count keys: `hostq jobs` prints them, the admin
// statements compare them in SQL.
#include "hostq/job_selector.hpp"
#include "hostq/job_state.hpp"

namespace hostq {

const char* toString(JobState s) noexcept {
  switch (s) {
    case JobState::Queued: return "queued";
    case JobState::Future: return "future";
    case JobState::Blocked: return "blocked";
    case JobState::Running: return "running";
    case JobState::Prefetched: return "prefetched";
    case JobState::Held: return "held";
    case JobState::Failed: return "failed";
  }
  return "?";
}

std::optional<JobState> parseJobState(std::string_view s) noexcept {
  for (auto st : {JobState::Queued, JobState::Future, JobState::Blocked, JobState::Running, JobState::Prefetched,
                  JobState::Held, JobState::Failed}) {
    if (s == toString(st)) return st;
  }
  return std::nullopt;
}

std::optional<CountBy> parseCountBy(std::string_view s) noexcept {
  if (s == "queue") return CountBy::Queue;
  if (s == "tag") return CountBy::Tag;
  if (s == "strand") return CountBy::Strand;
  return std::nullopt;
}

}  // namespace hostq
