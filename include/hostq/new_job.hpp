#pragma once
// A job to enqueue and what enqueuing it did. Defaults follow inst-jobs' Settings.
#include <chrono>
#include <optional>
#include <string>

#include "hostq/job.hpp"

namespace hostq {

/// What enqueuing a singleton does when a job of the same singleton is queued already.
enum class OnConflict {
  UseEarliest,  ///< keep the queued job, moved to the earlier run_at of the two
  Overwrite,    ///< the queued job takes the new job's payload and run_at
  Loose,        ///< keep the queued job as it is; the new one is dropped (inst-jobs' :loose)
  Patient,      ///< the same here (inst-jobs' :patient)
};
enum class EnqueueResult { Inserted, Updated, Dropped };

/// A job to enqueue. Each rule below is checked when the job is enqueued: a job that breaks one
/// throws ValidationError and nothing is written (for a batch: nothing of the batch). Every member
/// has an initializer, so a designated initializer (`{.tag = "greet", .queue = "mail"}`) may leave
/// any of them out.
struct NewJob {
  std::string tag{};      ///< the handler's name; must not be empty
  std::string payload{};  ///< opaque text handed to the handler (the `handler` column)
  std::string queue = "queue";  ///< must not be blank
  int priority = kNormalPriority;  ///< kMinPriority (0, runs first) … kMaxPriority
  std::optional<TimePoint> run_at{};  ///< default: the database's now()
  /// Relative run_at (from the database clock); used when run_at is empty.
  std::optional<std::chrono::microseconds> run_in{};
  /// Jobs of one strand run one at a time, in enqueue order. A stranded job's run_at may be at
  /// most 10 s ahead (it would block its whole strand until then).
  std::optional<std::string> strand{};
  std::optional<std::string> n_strand{};  ///< "name" or "name/ext"; becomes the strand; not with strand
  std::optional<int> max_concurrent{};    ///< width of an n_strand (default 1), >= 1; unused without one
  /// At most one queued and one running job per singleton value.
  std::optional<std::string> singleton{};
  std::optional<OnConflict> on_conflict{};  ///< only with singleton; default UseEarliest
  /// Attempts before the job fails for good, >= 1 (0 and -1, which inst-jobs rows may carry, are
  /// accepted and act as 1). Default: the client's default_max_attempts.
  std::optional<int> max_attempts{};
  std::optional<TimePoint> expires_at{};  ///< after this the job fails instead of running
  std::optional<std::string> source{};    ///< free text naming who enqueued the job
};

struct Enqueued {
  JobId id = 0;  ///< 0 when dropped
  EnqueueResult result = EnqueueResult::Inserted;
};

}  // namespace hostq
