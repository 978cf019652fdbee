#include "store/job_row.hpp"

namespace hostq::store {
namespace {

std::optional<TimePoint> optTime(const PgResult& r, int row, int col) {
  auto v = r.optI64(row, col);
  return v ? std::optional<TimePoint>(fromMicros(*v)) : std::nullopt;
}

}  // namespace

Job parseJob(const PgResult& r, int row, int c, bool failed) {
  Job j;
  j.id = r.i64(row, c + 0);
  j.priority = r.isNull(row, c + 1) ? 0 : r.i32(row, c + 1);
  j.attempts = r.isNull(row, c + 2) ? 0 : r.i32(row, c + 2);
  j.tag = r.isNull(row, c + 3) ? std::string() : r.str(row, c + 3);
  j.payload = r.isNull(row, c + 4) ? std::string() : r.str(row, c + 4);
  j.last_error = r.optStr(row, c + 5);
  j.queue = r.isNull(row, c + 6) ? std::string() : r.str(row, c + 6);
  j.run_at = optTime(r, row, c + 7).value_or(TimePoint{});
  j.locked_at = optTime(r, row, c + 8);
  j.failed_at = optTime(r, row, c + 9);
  j.locked_by = r.optStr(row, c + 10);
  j.created_at = optTime(r, row, c + 11).value_or(TimePoint{});
  j.updated_at = optTime(r, row, c + 12).value_or(TimePoint{});
  if (auto v = r.optI64(row, c + 13)) j.max_attempts = static_cast<int>(*v);
  j.strand = r.optStr(row, c + 14);
  j.next_in_strand = r.boolean(row, c + 15);
  j.source = r.optStr(row, c + 16);
  j.max_concurrent = r.i32(row, c + 17);
  j.expires_at = optTime(r, row, c + 18);
  j.strand_order_override = r.i32(row, c + 19);
  j.singleton = r.optStr(row, c + 20);
  if (failed) {
    j.original_job_id = r.optI64(row, c + 21);
    j.requeued_job_id = r.optI64(row, c + 22);
  }
  return j;
}

}  // namespace hostq::store
