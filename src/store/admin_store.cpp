#include "store/admin_store.hpp"

#include <algorithm>
#include <array>
#include <span>

#include "store/job_row.hpp"
#include "store/job_validation.hpp"
#include "store/pg_retry.hpp"
#include "store/sql_catalog.hpp"

namespace hostq::store {
namespace {

/// failed_jobs rows per cleanup statement: bounded transactions on a table that may hold millions.
constexpr int kCleanupBatch = 10'000;

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
  validateNewJob(j);
  if (j.strand || j.n_strand || j.singleton) throw ValidationError("enqueueCopies takes plain jobs only");
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
  PgResult r = run(sql("insert_copies"), params, Phase::Write);
  std::vector<JobId> ids;
  ids.reserve(static_cast<std::size_t>(r.rows()));
  const int id = r.column("id");
  for (int i = 0; i < r.rows(); ++i) ids.push_back(r.i64(i, id));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<std::pair<Job, JobState>> AdminStore::list(const JobSelector& sel, std::optional<JobState> state,
                                                      int limit) {
  if (state == JobState::Failed) throw ValidationError("failed jobs are listed by listFailed");
  const auto params = withSelection<6>(sel, {state ? Param(toString(*state)) : std::nullopt, num(limit)});
  PgResult r = run(sql("admin_list"), params, Phase::Read);
  std::vector<std::pair<Job, JobState>> out;
  const JobRowReader job(r);
  const int stateCol = r.column("state");
  for (int i = 0; i < r.rows(); ++i) {
    out.emplace_back(job(i), parseJobState(r.text(i, stateCol)).value_or(JobState::Queued));
  }
  return out;
}

std::vector<Job> AdminStore::listFailed(const JobSelector& sel, int limit) {
  const auto params = withSelection<5>(sel, {num(limit)});
  PgResult r = run(sql("admin_list_failed"), params, Phase::Read);
  std::vector<Job> out;
  const JobRowReader job(r, JobRowReader::Table::Failed);
  for (int i = 0; i < r.rows(); ++i) out.push_back(job(i));
  return out;
}

std::vector<GroupCount> AdminStore::counts(CountBy by, const JobSelector& sel) {
  const char* key = by == CountBy::Tag ? "tag" : by == CountBy::Strand ? "strand" : "queue";
  const auto params = withSelection<5>(sel, {Param(key)});
  return readCounts(run(sql("job_counts"), params, Phase::Read));
}

std::vector<GroupCount> readCounts(const PgResult& r) {
  const int key = r.column("key"), queued = r.column("queued"), future = r.column("future"),
            blocked = r.column("blocked"), running = r.column("running"), prefetched = r.column("prefetched"),
            held = r.column("held"), failed = r.column("failed");
  std::vector<GroupCount> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(GroupCount{r.str(i, key), r.i64(i, queued), r.i64(i, future), r.i64(i, blocked),
                             r.i64(i, running), r.i64(i, prefetched), r.i64(i, held), r.i64(i, failed)});
  }
  return out;
}

int AdminStore::hold(const JobSelector& sel) {
  const auto params = selectionParams(sel);
  return static_cast<int>(run(sql("admin_hold"), params, Phase::Write).affected());
}

int AdminStore::unhold(const JobSelector& sel) {
  const auto params = selectionParams(sel);
  return static_cast<int>(run(sql("admin_unhold"), params, Phase::Write).affected());
}

int AdminStore::destroy(const JobSelector& sel, bool failed) {
  const auto params = selectionParams(sel);
  return static_cast<int>(run(failed ? sql("admin_destroy_failed") : sql("admin_destroy"), params, Phase::Write).affected());
}

std::int64_t AdminStore::cleanupFailed(std::chrono::seconds olderThan) {
  std::int64_t total = 0;
  for (;;) {
    const std::array<Param, 2> params{num(olderThan.count()), num(kCleanupBatch)};
    const PgResult r = run(sql("admin_cleanup_failed"), params, Phase::Write);
    const std::int64_t n = r.i64(0, r.column("deleted"));
    total += n;
    if (n < kCleanupBatch) return total;
  }
}

}  // namespace hostq::store
