#pragma once
// Decoding of a job row selected with sql::jobColumns(): shared by the store and the admin store.
#include "hostq/job.hpp"
#include "store/pg_connection.hpp"

namespace hostq::store {

/// The job whose columns start at column `c` of row `row` (sql::jobColumns order; `failed` adds
/// failed_jobs' two extra columns).
Job parseJob(const PgResult& r, int row, int c, bool failed = false);

}  // namespace hostq::store
