#pragma once
// The rules a new job must meet before anything is written: the one place that owns them and
// their messages, used by every way in (Store::enqueue*, AdminStore::enqueueCopies, `hostq
// enqueue`, which checks a whole --stdin input with it before it writes a line).
#include "hostq/new_job.hpp"

namespace hostq::store {

/// Throws ValidationError naming the first rule `job` breaks. What needs the database clock (a
/// stranded job's run_at may be only a little ahead) is checked by the store at enqueue.
void validateNewJob(const NewJob& job);

}  // namespace hostq::store
