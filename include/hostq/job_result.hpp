#pragma once
// A job's result on its way from the worker to the database, and the database's decision on a
// failure on its way back. One shape each, end to end: the worker reports a JobResult (its job
// source), the wire carries it as a Complete or Fail frame (protocol/job_convert.hpp converts
// both ways), the server's reserver queues it, and the writer's compare-and-set adds only the
// lock owner it expects (Failure, store.hpp). The fail statement alone decides whether a failure
// is retried or permanent; its FailResult goes back to the worker in the result's ack, and the
// worker fires its retry / permanent-failure hooks from that.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "hostq/job.hpp"

namespace hostq {

/// A worker's report on a job it ran.
struct JobResult {
  JobId id = 0;
  bool success = true;
  /// Failure text (empty on success).
  std::string error;
  /// Reschedule at this time instead of the default backoff, should the failure be retried.
  std::optional<TimePoint> run_at;
  /// false = inst-jobs' `:unlock` from on_failure: this failure does not count as an attempt.
  bool count_attempt = true;
  /// Asks for a permanent failure whatever the attempts (an expired job). The database may still
  /// find a failure permanent without it (attempts reached max_attempts, expired by its clock).
  bool permanent = false;

  static JobResult completed(JobId id) { return JobResult{id, true, {}, std::nullopt, true, false}; }
  static JobResult failed(JobId id, std::string error) {
    return JobResult{id, false, std::move(error), std::nullopt, true, false};
  }
};

/// What the fail statement did with a failure. The wire carries the numbers: never renumber.
enum class FailOutcome : std::uint8_t {
  Rescheduled = 0,        ///< back in the queue with attempts+1 and a later run_at
  MovedToFailedJobs = 1,  ///< permanent failure, row now in failed_jobs
  Deleted = 2,            ///< permanent failure, row deleted (configured)
  Mismatch = 3,           ///< not locked by the given locked_by (or gone): nothing done
};

/// The database's decision on one failure.
struct FailResult {
  JobId id = 0;
  FailOutcome outcome = FailOutcome::Mismatch;
  int attempts = 0;  ///< attempts after the failure
  /// Rescheduled: when the job runs next (the database's clock).
  std::optional<TimePoint> run_at;

  bool permanent() const noexcept {
    return outcome == FailOutcome::MovedToFailedJobs || outcome == FailOutcome::Deleted;
  }
  bool operator==(const FailResult&) const = default;
};

}  // namespace hostq
