#pragma once
// A row of delayed_jobs (or failed_jobs) as the library sees it. Plain value type, no behaviour.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace hostq {

using JobId = std::int64_t;
/// Timestamps are UTC, microsecond precision (PostgreSQL `timestamp without time zone`).
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

/// Priority constants of inst-jobs.
inline constexpr int kMinPriority = 0;
inline constexpr int kHighPriority = 0;
inline constexpr int kNormalPriority = 10;  ///< the default priority of a new job
inline constexpr int kLowPriority = 20;
inline constexpr int kLowerPriority = 50;
inline constexpr int kMaxPriority = 1'000'000;

/// locked_by of a held job (inst-jobs' `hold!`).
inline constexpr const char* kOnHold = "on hold";

struct Job {
  JobId id = 0;
  int priority = kNormalPriority;
  int attempts = 0;
  std::string tag;      ///< handler name
  std::string payload;  ///< the `handler` column: opaque text for the handler
  std::optional<std::string> last_error;
  std::string queue;
  TimePoint run_at{};
  std::optional<TimePoint> locked_at;
  std::optional<TimePoint> failed_at;
  std::optional<std::string> locked_by;
  TimePoint created_at{};
  TimePoint updated_at{};
  std::optional<int> max_attempts;
  std::optional<std::string> strand;
  bool next_in_strand = true;
  std::optional<std::string> source;
  int max_concurrent = 1;
  std::optional<TimePoint> expires_at;
  int strand_order_override = 0;
  std::optional<std::string> singleton;
  // failed_jobs only
  std::optional<JobId> original_job_id;
  std::optional<JobId> requeued_job_id;
};

}  // namespace hostq
