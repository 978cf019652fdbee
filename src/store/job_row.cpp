#include "store/job_row.hpp"

#include <stdexcept>
#include <string>

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

namespace {

enum ClaimedCol {
  cId, cPriority, cAttempts, cTag, cHandler, cQueue, cRunAt, cCreatedAt, cMaxAttempts, cStrand, cExpiresAt,
  cSingleton, cClaimedColumns
};
constexpr const char* kClaimedNames[cClaimedColumns] = {
    "id", "priority", "attempts", "tag", "handler", "queue", "run_at", "created_at", "max_attempts", "strand",
    "expires_at", "singleton"};
/// PostgreSQL's timestamp epoch (2000-01-01) in µs since the Unix epoch.
constexpr std::int64_t kPgEpochUnixMicros = 946'684'800'000'000;

std::int64_t bigEndian(const char* p, int len) {
  std::uint64_t v = 0;
  for (int i = 0; i < len; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  // Sign-extend the 2- and 4-byte integers.
  const int shift = 64 - 8 * len;
  return shift > 0 ? static_cast<std::int64_t>(v << shift) >> shift : static_cast<std::int64_t>(v);
}

}  // namespace

ClaimedRowReader::ClaimedRowReader(const PgResult& result) : m_r(result) {
  static_assert(std::tuple_size_v<decltype(m_col)> == cClaimedColumns);
  for (int c = 0; c < cClaimedColumns; ++c) {
    const int col = result.column(kClaimedNames[c]);
    if (!result.binary(col))
      throw std::logic_error(std::string("column ") + kClaimedNames[c] + " of a claim is not in binary format");
    m_col[static_cast<std::size_t>(c)] = col;
  }
}

Job ClaimedRowReader::operator()(int row) const {
  PGresult* r = m_r.get();
  auto col = [&](ClaimedCol c) { return m_col[static_cast<std::size_t>(c)]; };
  auto isNull = [&](ClaimedCol c) { return PQgetisnull(r, row, col(c)) != 0; };
  // Integers are int2/int4/int8 by their length; a length outside those is a schema this
  // reader does not know, read as 0 rather than past the value.
  auto integer = [&](ClaimedCol c) -> std::int64_t {
    const int len = PQgetlength(r, row, col(c));
    if (len != 2 && len != 4 && len != 8) return 0;
    return bigEndian(PQgetvalue(r, row, col(c)), len);
  };
  auto text = [&](ClaimedCol c, std::string& out) {
    out.assign(PQgetvalue(r, row, col(c)), static_cast<std::size_t>(PQgetlength(r, row, col(c))));
  };
  auto optText = [&](ClaimedCol c, std::optional<std::string>& out) {
    if (isNull(c)) return;
    text(c, out.emplace());
  };
  auto time = [&](ClaimedCol c) { return fromMicros(integer(c) + kPgEpochUnixMicros); };

  Job j;
  j.id = integer(cId);
  j.priority = isNull(cPriority) ? 0 : static_cast<int>(integer(cPriority));
  if (!isNull(cAttempts)) j.attempts = static_cast<int>(integer(cAttempts));
  if (!isNull(cTag)) text(cTag, j.tag);
  if (!isNull(cHandler)) text(cHandler, j.payload);
  if (!isNull(cQueue)) text(cQueue, j.queue);
  if (!isNull(cRunAt)) j.run_at = time(cRunAt);
  if (!isNull(cCreatedAt)) j.created_at = time(cCreatedAt);
  if (!isNull(cMaxAttempts)) j.max_attempts = static_cast<int>(integer(cMaxAttempts));
  optText(cStrand, j.strand);
  if (!isNull(cExpiresAt)) j.expires_at = time(cExpiresAt);
  optText(cSingleton, j.singleton);
  return j;
}

}  // namespace hostq::store
