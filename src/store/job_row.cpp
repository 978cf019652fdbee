#include "store/job_row.hpp"

namespace hostq::store {
namespace {

// Index into JobRowReader::m_col; kNames holds the column names in the same order.
enum Col {
  kId, kPriority, kAttempts, kTag, kHandler, kLastError, kQueue, kRunAt, kLockedAt, kFailedAt, kLockedBy,
  kCreatedAt, kUpdatedAt, kMaxAttempts, kStrand, kNextInStrand, kSource, kMaxConcurrent, kExpiresAt,
  kStrandOrderOverride, kSingleton, kOriginalJobId, kRequeuedJobId, kColumns
};
constexpr const char* kNames[kColumns] = {
    "id", "priority", "attempts", "tag", "handler", "last_error", "queue", "run_at_us", "locked_at_us",
    "failed_at_us", "locked_by", "created_at_us", "updated_at_us", "max_attempts", "strand", "next_in_strand",
    "source", "max_concurrent", "expires_at_us", "strand_order_override", "singleton", "original_job_id",
    "requeued_job_id"};

std::optional<TimePoint> optTime(const PgResult& r, int row, int col) {
  auto v = r.optI64(row, col);
  return v ? std::optional<TimePoint>(fromMicros(*v)) : std::nullopt;
}

}  // namespace

JobRowReader::JobRowReader(const PgResult& result, Table table)
    : m_r(result), m_failed(table == Table::Failed) {
  static_assert(std::tuple_size_v<decltype(m_col)> == kColumns);
  const int n = m_failed ? kColumns : kOriginalJobId;
  for (int c = 0; c < n; ++c) m_col[static_cast<std::size_t>(c)] = result.column(kNames[c]);
}

Job JobRowReader::operator()(int row) const {
  const auto& r = m_r;
  auto at = [&](Col c) { return m_col[static_cast<std::size_t>(c)]; };
  Job j;
  j.id = r.i64(row, at(kId));
  j.priority = r.isNull(row, at(kPriority)) ? 0 : r.i32(row, at(kPriority));
  j.attempts = r.isNull(row, at(kAttempts)) ? 0 : r.i32(row, at(kAttempts));
  j.tag = r.optStr(row, at(kTag)).value_or(std::string());
  j.payload = r.optStr(row, at(kHandler)).value_or(std::string());
  j.last_error = r.optStr(row, at(kLastError));
  j.queue = r.optStr(row, at(kQueue)).value_or(std::string());
  j.run_at = optTime(r, row, at(kRunAt)).value_or(TimePoint{});
  j.locked_at = optTime(r, row, at(kLockedAt));
  j.failed_at = optTime(r, row, at(kFailedAt));
  j.locked_by = r.optStr(row, at(kLockedBy));
  j.created_at = optTime(r, row, at(kCreatedAt)).value_or(TimePoint{});
  j.updated_at = optTime(r, row, at(kUpdatedAt)).value_or(TimePoint{});
  if (auto v = r.optI64(row, at(kMaxAttempts))) j.max_attempts = static_cast<int>(*v);
  j.strand = r.optStr(row, at(kStrand));
  j.next_in_strand = r.boolean(row, at(kNextInStrand));
  j.source = r.optStr(row, at(kSource));
  j.max_concurrent = r.i32(row, at(kMaxConcurrent));
  j.expires_at = optTime(r, row, at(kExpiresAt));
  j.strand_order_override = r.i32(row, at(kStrandOrderOverride));
  j.singleton = r.optStr(row, at(kSingleton));
  if (m_failed) {
    j.original_job_id = r.optI64(row, at(kOriginalJobId));
    j.requeued_job_id = r.optI64(row, at(kRequeuedJobId));
  }
  return j;
}

}  // namespace hostq::store
