#include "store/admin_store.hpp"

#include <algorithm>
#include <array>
#include <span>

#include "store/job_row.hpp"
#include "store/pg_retry.hpp"
#include "store/statements.hpp"

namespace hostq::store {
namespace {

using sql::kNow;

/// failed_jobs rows per cleanup statement: bounded transactions on a table that may hold millions.
constexpr int kCleanupBatch = 10'000;

// $1 ids (NULL = any), $2 tag, $3 strand, $4 queue: a NULL part matches everything. Each admin
// statement runs once per connection, so PostgreSQL plans it with the values (custom plan) and the
// NULL parts fold away; the indexes on tag, strand and queue are used as usual.
const std::string kSelection =
    "($1::int8[] IS NULL OR id = ANY($1::int8[])) AND ($2::text IS NULL OR tag = $2::text)"
    " AND ($3::text IS NULL OR strand = $3::text) AND ($4::text IS NULL OR queue = $4::text)";

// The state `hostq jobs` shows, in SQL; the same order of tests as verb_jobs' state().
const std::string kStateExpr =
    "CASE WHEN locked_by = 'on hold' THEN 'held' WHEN locked_by LIKE 'prefetch:%' THEN 'prefetched'"
    " WHEN locked_by IS NOT NULL THEN 'running' WHEN NOT next_in_strand THEN 'blocked'"
    " WHEN run_at > " + kNow + " THEN 'future' ELSE 'queued' END";

// Runnable jobs by id, then future ones by run_at: two branches, each able to stop after
// `limit` rows of an index (the primary key; run_at) instead of sorting the whole table, in one
// statement and so one snapshot.
std::string listBranch(const std::string& timeFilter, const std::string& order, int part) {
  return "(SELECT " + sql::jobColumns("") + ", " + kStateExpr + ", " + std::to_string(part) +
         " AS part, run_at AS sort_at, id AS sort_id FROM delayed_jobs WHERE " + kSelection + " AND ($5::text IS NULL OR " + kStateExpr +
         " = $5::text) AND " + timeFilter + " ORDER BY " + order + " LIMIT $6::int)";
}
const Statement kList{
    "hostq_admin_list",
    "SELECT * FROM (" + listBranch("run_at <= " + kNow, "id", 0) + " UNION ALL " +
    listBranch("run_at > " + kNow, "run_at, id", 1) + ") l ORDER BY part, CASE WHEN part = 1 THEN sort_at END, sort_id"
    " LIMIT $6::int"};

const Statement kListFailed{
    "hostq_admin_list_failed",
    "SELECT " + sql::jobColumns("", true) + " FROM failed_jobs WHERE " + kSelection +
    " ORDER BY id DESC LIMIT $5::int"};

Statement countsStatement(const char* name, const std::string& key) {
  return Statement{name, sql::countsSql(key, kSelection)};
}
const Statement kCountsByQueue = countsStatement("hostq_admin_counts_queue", "queue");
const Statement kCountsByTag = countsStatement("hostq_admin_counts_tag", "tag");
const Statement kCountsByStrand = countsStatement("hostq_admin_counts_strand", "strand");

const Statement kHold{
    "hostq_admin_hold",
    "UPDATE delayed_jobs SET locked_by = 'on hold', locked_at = " + kNow +
    ", attempts = 50 WHERE " + kSelection + " AND locked_by IS NULL"};
const Statement kUnhold{
    "hostq_admin_unhold",
    "UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL, attempts = 0,"
    " run_at = GREATEST(run_at, " + kNow + "), failed_at = NULL"
    " WHERE " + kSelection + " AND locked_by = 'on hold'"};

// A plain DELETE: the AFTER DELETE trigger promotes the strand's or singleton's successor, as when
// a worker completes a job. Locked rows are left alone; one a reservation locks meanwhile is
// re-checked by PostgreSQL after the row lock and skipped.
const Statement kDestroy{
    "hostq_admin_destroy",
    "DELETE FROM delayed_jobs WHERE " + kSelection + " AND (locked_by IS NULL OR locked_by = 'on hold')"};
const Statement kDestroyFailed{"hostq_admin_destroy_failed", "DELETE FROM failed_jobs WHERE " + kSelection};

const Statement kCleanupFailed{
    "hostq_admin_cleanup_failed",
    "WITH d AS (DELETE FROM failed_jobs WHERE id IN ("
    "    SELECT id FROM failed_jobs WHERE failed_at < " + kNow + " - $1::int8 * interval '1 second'"
    "     LIMIT $2::int) RETURNING 1) "
    "SELECT count(*) FROM d"};

// $1 priority, $2 handler, $3 queue, $4 run_at µs | NULL, $5 run_in µs | NULL, $6 tag,
// $7 max_attempts, $8 source, $9 expires_at µs, $10 count. Plain jobs only: no strand lock, no
// singleton conflict, the insert trigger does not fire.
const Statement kInsertCopies{
    "hostq_admin_insert_copies",
    "INSERT INTO delayed_jobs (priority, attempts, handler, queue, run_at, created_at, updated_at,"
    "  tag, max_attempts, source, expires_at) "
    "SELECT $1::int, 0, $2::text, $3::varchar, COALESCE(" + sql::ts("$4") + ", " + kNow +
    "   + COALESCE($5::int8, 0) * interval '1 microsecond'), " + kNow + ", " + kNow +
    "   , $6::varchar, $7::int, $8::varchar, " + sql::ts("$9") +
    "  FROM generate_series(1, $10::int) RETURNING id"};

Param num(std::int64_t v) { return std::to_string(v); }

std::array<Param, 4> selectionParams(const JobSelector& sel) {
  return {sel.ids.empty() ? std::nullopt : Param(arrayLiteral(std::span<const JobId>(sel.ids))), sel.tag,
          sel.strand, sel.queue};
}

template <std::size_t N>
std::array<Param, N> withSelection(const JobSelector& sel, std::array<Param, N - 4> rest) {
  std::array<Param, N> out;
  const auto s = selectionParams(sel);
  std::copy(s.begin(), s.end(), out.begin());
  std::copy(rest.begin(), rest.end(), out.begin() + 4);
  return out;
}

}  // namespace

AdminStore::AdminStore(std::string url, StoreOptions options)
    : m_options(options), m_conn(std::move(url), std::move(options)) {
  m_conn.open();
}

PgResult AdminStore::run(const Statement& st, std::span<const Param> params, Phase phase) {
  return execRetrying(m_conn, st, params, phase);
}

std::vector<JobId> AdminStore::enqueueCopies(const NewJob& j, std::int64_t count) {
  if (j.strand || j.n_strand || j.singleton) throw ValidationError("enqueueCopies takes plain jobs only");
  if (j.queue.find_first_not_of(" \t\r\n") == std::string::npos) throw ValidationError("queue name can't be blank");
  if (j.priority < kMinPriority || j.priority > kMaxPriority) {
    throw ValidationError("priority " + std::to_string(j.priority) + " is outside 0..1000000");
  }
  const std::array<Param, 10> params{
      num(j.priority),
      Param(j.payload),
      Param(j.queue),
      j.run_at ? num(micros(*j.run_at)) : std::nullopt,
      j.run_in ? num(j.run_in->count()) : std::nullopt,
      Param(j.tag),
      num(j.max_attempts.value_or(m_options.default_max_attempts)),
      j.source,
      j.expires_at ? num(micros(*j.expires_at)) : std::nullopt,
      num(count)};
  PgResult r = run(kInsertCopies, params, Phase::Write);
  std::vector<JobId> ids;
  ids.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) ids.push_back(r.i64(i, 0));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<std::pair<Job, JobState>> AdminStore::list(const JobSelector& sel, std::optional<JobState> state,
                                                      int limit) {
  if (state == JobState::Failed) throw ValidationError("failed jobs are listed by listFailed");
  const auto params = withSelection<6>(sel, {state ? Param(toString(*state)) : std::nullopt, num(limit)});
  PgResult r = run(kList, params, Phase::Read);
  std::vector<std::pair<Job, JobState>> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.emplace_back(parseJob(r, i, 0), parseJobState(r.text(i, sql::kJobColumnCount)).value_or(JobState::Queued));
  }
  return out;
}

std::vector<Job> AdminStore::listFailed(const JobSelector& sel, int limit) {
  const auto params = withSelection<5>(sel, {num(limit)});
  PgResult r = run(kListFailed, params, Phase::Read);
  std::vector<Job> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(parseJob(r, i, 0, true));
  return out;
}

std::vector<GroupCount> AdminStore::counts(CountBy by, const JobSelector& sel) {
  const Statement& st = by == CountBy::Tag ? kCountsByTag : by == CountBy::Strand ? kCountsByStrand : kCountsByQueue;
  const auto params = selectionParams(sel);
  PgResult r = run(st, params, Phase::Read);
  std::vector<GroupCount> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(GroupCount{r.str(i, 0), r.i64(i, 1), r.i64(i, 2), r.i64(i, 3), r.i64(i, 4), r.i64(i, 5),
                             r.i64(i, 6), r.i64(i, 7)});
  }
  return out;
}

int AdminStore::hold(const JobSelector& sel) {
  const auto params = selectionParams(sel);
  return static_cast<int>(run(kHold, params, Phase::Write).affected());
}

int AdminStore::unhold(const JobSelector& sel) {
  const auto params = selectionParams(sel);
  return static_cast<int>(run(kUnhold, params, Phase::Write).affected());
}

int AdminStore::destroy(const JobSelector& sel, bool failed) {
  const auto params = selectionParams(sel);
  return static_cast<int>(run(failed ? kDestroyFailed : kDestroy, params, Phase::Write).affected());
}

std::int64_t AdminStore::cleanupFailed(std::chrono::seconds olderThan) {
  std::int64_t total = 0;
  for (;;) {
    const std::array<Param, 2> params{num(olderThan.count()), num(kCleanupBatch)};
    const std::int64_t n = run(kCleanupFailed, params, Phase::Write).i64(0, 0);
    total += n;
    if (n < kCleanupBatch) return total;
  }
}

}  // namespace hostq::store
