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

/// Decodes the rows of the held-lock claim: the columns of the fragment claimed_job_columns, in
/// binary (exec with ResultFormat::Binary), into what a worker is given of a job. The rest of
/// the Job keeps its defaults: a claimed row is unlocked, at its strand's head, never failed.
/// Binary because this is the one statement whose rows are decoded by the thousand: integers
/// and timestamps are fixed-width fields instead of text to parse (the text decode of the full
/// row was the largest item of the server's CPU per job).
class ClaimedRowReader {
 public:
  /// Throws std::logic_error naming a missing column or one not in binary format.
  explicit ClaimedRowReader(const PgResult& result);
  Job operator()(int row) const;

 private:
  const PgResult& m_r;
  std::array<int, 12> m_col{};
};

}  // namespace hostq::store
