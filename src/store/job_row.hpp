#pragma once
// Decoding of job rows, by column name: a statement selects the columns of the fragments
// delayed_job_columns or failed_job_columns (src/store/sql/fragments.sql), in any order and
// beside any others. Shared by the store and the admin store.
#include <array>

#include "hostq/job.hpp"
#include "store/pg_connection.hpp"

namespace hostq::store {

/// Resolves the job columns of one result once (a missing column throws std::logic_error naming
/// it), then decodes any of its rows without another lookup: the reservation path decodes
/// hundreds of rows per result.
class JobRowReader {
 public:
  enum class Table { Delayed, Failed };  ///< Failed: failed_jobs' two extra columns too
  JobRowReader(const PgResult& result, Table table = Table::Delayed);
  Job operator()(int row) const;

 private:
  const PgResult& m_r;
  bool m_failed;
  std::array<int, 23> m_col{};
};

}  // namespace hostq::store
