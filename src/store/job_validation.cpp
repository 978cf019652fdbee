#include "store/job_validation.hpp"

#include <string>

#include "hostq/error.hpp"

namespace hostq::store {

void validateNewJob(const NewJob& j) {
  if (j.tag.empty()) throw ValidationError("tag must not be empty");
  if (j.queue.find_first_not_of(" \t\r\n\f\v") == std::string::npos) throw ValidationError("queue must not be blank");
  if (j.priority < kMinPriority || j.priority > kMaxPriority) {
    throw ValidationError("priority must be between " + std::to_string(kMinPriority) + " and " +
                          std::to_string(kMaxPriority) + " (got " + std::to_string(j.priority) + ")");
  }
  if (j.strand && j.n_strand) throw ValidationError("strand and n_strand are mutually exclusive");
  if (j.max_concurrent) {
    if (!j.n_strand) throw ValidationError("max_concurrent needs n_strand");
    if (*j.max_concurrent < 1) {
      throw ValidationError("max_concurrent must be at least 1 (got " + std::to_string(*j.max_concurrent) + ")");
    }
  }
  if (j.on_conflict && !j.singleton) throw ValidationError("on_conflict needs singleton");
  // 0 and -1 are accepted: with either, the first failure is final.
  if (j.max_attempts && *j.max_attempts < -1) {
    throw ValidationError("max_attempts must be positive (got " + std::to_string(*j.max_attempts) + ")");
  }
}

}  // namespace hostq::store
