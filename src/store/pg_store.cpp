// Store on libpq. Statement texts live in src/store/sql/*.sql (store/sql_catalog.hpp); this file
// holds parameter encoding, result decoding, transactions and the retry policy (docs/store.md).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <regex>
#include <sstream>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "store/store.hpp"

#include "common/process_probe.hpp"
#include "store/admin_store.hpp"
#include "store/held_claims.hpp"
#include "store/job_row.hpp"
#include "store/job_validation.hpp"
#include "store/pg_connection.hpp"
#include "store/sql_catalog.hpp"

namespace hostq::detail {
extern const std::pair<std::string_view, std::string_view> kSqlFiles[];
extern const std::size_t kSqlFileCount;
}  // namespace hostq::detail

namespace hostq {
namespace {

using store::ClaimedRowReader;
using store::JobRowReader;
using store::PgConnection;
using store::Param;
using store::PgResult;
using store::Phase;
using store::sql;

/// Transient server-side rollbacks (deadlock, serialization, lock timeout) are retried this often.
constexpr int kMaxRetries = 3;

int migrationVersion(std::string_view fileName) {
  int v = 0;
  for (char c : fileName) {
    if (c < '0' || c > '9') break;
    v = v * 10 + (c - '0');
  }
  return v;
}

Param num(std::int64_t v) { return std::to_string(v); }

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

const char* onConflictName(OnConflict c) {
  switch (c) {
    case OnConflict::UseEarliest: return "use_earliest";
    case OnConflict::Overwrite: return "overwrite";
    case OnConflict::Loose: return "loose";
    case OnConflict::Patient: return "patient";
  }
  return "use_earliest";
}

std::string likeEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::int64_t nowMicros() {
  return store::micros(
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()));
}

/// Start time of a live process in Unix µs (from /proc), or nullopt if unreadable. Resolution is
/// bounded by /proc/stat's btime, which is whole seconds.
std::optional<std::int64_t> processStartMicros(int pid) {
  const auto process = probeProcess(pid);
  if (!process) return std::nullopt;
  std::string line;
  std::ifstream procStat("/proc/stat");
  long long btime = -1;
  while (std::getline(procStat, line)) {
    if (line.rfind("btime ", 0) == 0) btime = std::stoll(line.substr(6));
  }
  const long hz = sysconf(_SC_CLK_TCK);
  if (btime < 0 || hz <= 0) return std::nullopt;
  return btime * 1'000'000 + static_cast<std::int64_t>(process->start_ticks) * 1'000'000 / hz;
}

class PgStore final : public Store, public store::HeldClaims {
 public:
  PgStore(std::string url, StoreOptions options)
      : m_options(options), m_conn(std::move(url), std::move(options)) {
    m_conn.open();
  }

  // --- schema -----------------------------------------------------------------------------------
  int migrate() override {
    return withRetry([&] {
      Transaction txn(*this);
      m_conn.exec(sql("migrate_lock"), {}, Phase::InTxn);
      const int current = currentVersion(Phase::InTxn);
      const int latest = latestSchemaVersion();
      if (current > latest) {
        throw SchemaTooNewError("database schema version " + std::to_string(current) +
                                " is newer than this hostq binary knows (" + std::to_string(latest) +
                                "); upgrade hostq before using this database");
      }
      if (current == latest) return 0;  // the transaction rolls back: nothing written
      m_conn.simple(sql("create_migrations_table"), Phase::InTxn);
      int applied = 0;
      for (std::size_t i = 0; i < detail::kSqlFileCount; ++i) {
        const auto& [name, body] = detail::kSqlFiles[i];
        const int v = migrationVersion(name);
        if (v <= current) continue;
        m_conn.simple(std::string(body), Phase::InTxn);
        m_conn.exec(sql("record_migration"), {num(v), Param(std::string(name))}, Phase::InTxn);
        ++applied;
      }
      txn.commit();
      return applied;
    });
  }

  int schemaVersion() override {
    return withRetry([&] { return currentVersion(Phase::Read); });
  }

  // --- enqueue ----------------------------------------------------------------------------------
  Enqueued enqueue(const NewJob& job) override {
    validate(job);
    return withRetry([&] { return insert(job, Phase::Write); });
  }

  std::vector<Enqueued> enqueueMany(std::span<const NewJob> jobs) override {
    for (const auto& j : jobs) validate(j);
    if (jobs.empty()) return {};
    return withRetry([&] {
      Transaction txn(*this);
      std::vector<Enqueued> out;
      out.reserve(jobs.size());
      for (const auto& j : jobs) out.push_back(insert(j, Phase::InTxn));
      txn.commit();
      return out;
    });
  }

  std::size_t enqueueBulk(std::span<const NewJob> jobs) override {
    for (const auto& j : jobs) validate(j);
    if (jobs.empty()) return 0;
    return withRetry([&] {
      Transaction txn(*this);
      // now() is fixed for the transaction, so this value is exactly what the insert statement
      // would have used; COPY cannot evaluate expressions itself.
      const PgResult now = m_conn.exec(sql("now_us"), {}, Phase::InTxn);
      const std::int64_t dbNow = now.i64(0, now.column("now_us"));
      const std::string nowText = store::timestampText(dbNow);
      std::string data;
      data.reserve(jobs.size() * 96);
      std::size_t count = 0;
      for (const auto& j : jobs) {
        if (!isPlain(j)) {
          insert(j, Phase::InTxn);
          ++count;
          continue;
        }
        const std::int64_t runAt =
            j.run_at ? store::micros(*j.run_at) : dbNow + (j.run_in ? j.run_in->count() : 0);
        data += std::to_string(j.priority);
        data += "\t0\t";
        store::appendCopyField(data, j.payload);
        data += '\t';
        store::appendCopyField(data, j.queue);
        data += '\t';
        data += store::timestampText(runAt);
        data += '\t';
        data += nowText;
        data += '\t';
        data += nowText;
        data += '\t';
        store::appendCopyField(data, j.tag);
        data += '\t';
        data += std::to_string(j.max_attempts.value_or(m_options.default_max_attempts));
        data += '\t';
        if (j.source) {
          store::appendCopyField(data, *j.source);
        } else {
          data += "\\N";
        }
        data += '\t';
        data += j.expires_at ? store::timestampText(store::micros(*j.expires_at)) : "\\N";
        data += '\n';
      }
      if (!data.empty()) count += static_cast<std::size_t>(m_conn.copyIn(sql("copy_jobs").sql, data));
      txn.commit();
      return count;
    });
  }

  // --- the hot path -----------------------------------------------------------------------------
  static void validateRange(const ReserveRequest& req) {
    if (blank(req.queue)) throw ValidationError("queue name can't be blank");
    if (req.min_priority < kMinPriority || req.max_priority > kMaxPriority) {
      throw ValidationError("priority range must lie within " + std::to_string(kMinPriority) +
                            ".." + std::to_string(kMaxPriority));
    }
  }

  ReserveResult reserve(const ReserveRequest& req) override {
    validateRange(req);
    if (req.prefetch < 0) throw ValidationError("prefetch must not be negative");
    // inst-jobs would lock the extra rows with locked_by NULL: stuck forever. Refuse instead.
    if (req.prefetch > 0 && req.prefetch_owner.empty()) {
      throw ValidationError("prefetch > 0 needs a prefetch_owner");
    }
    ReserveResult out;
    const auto limit = static_cast<std::int64_t>(req.worker_names.size()) + req.prefetch;
    if (limit == 0) return out;
    const std::array<Param, 7> params{
        Param(store::arrayLiteral(std::span<const std::string>(req.worker_names))),
        Param(req.queue),
        num(req.min_priority),
        num(req.max_priority),
        num(limit),
        num(std::max<std::int64_t>(0, req.forced_latency.count())),
        req.prefetch > 0 ? Param(req.prefetch_owner) : std::nullopt};
    for (int repairs = 0;; ++repairs) {
      try {
        const auto& st = req.singletons_only ? sql("reserve_singletons") : sql("reserve");
        PgResult r = withRetry([&] { return m_conn.exec(st, params, Phase::Write); });
        std::vector<std::pair<std::int64_t, Job>> rows;
        rows.reserve(static_cast<std::size_t>(r.rows()));
        const int rn = r.column("rn");
        const JobRowReader job(r);
        for (int i = 0; i < r.rows(); ++i) rows.emplace_back(r.i64(i, rn), job(i));
        // RETURNING order is unspecified; row numbers are the (priority, run_at, id) order.
        std::sort(rows.begin(), rows.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& [rn, job] : rows) {
          if (rn <= static_cast<std::int64_t>(req.worker_names.size())) {
            out.assigned.emplace_back(req.worker_names[static_cast<std::size_t>(rn - 1)],
                                      std::move(job));
          } else {
            out.prefetched.push_back(std::move(job));
          }
        }
        return out;
      } catch (const DbError& e) {
        static const std::regex kKey(R"(Key \(singleton\)=\((.+)\) already exists\.)");
        std::cmatch m;
        const std::string what = e.what();
        if (e.sqlstate() != "23505" ||
            what.find("index_delayed_jobs_on_singleton_running") == std::string::npos ||
            !std::regex_search(what.c_str(), m, kKey) || repairs >= kMaxRetries) {
          throw;
        }
        if (!repairSingleton(m[1].str())) throw;
      }
    }
  }

  BatchResult transferLocks(std::span<const LockTransfer> transfers) override {
    std::vector<std::int64_t> ids;
    std::vector<std::optional<std::string>> from;
    std::vector<std::string> to;
    for (const auto& t : transfers) {
      ids.push_back(t.id);
      from.push_back(owner(t.from));
      to.push_back(t.to);
    }
    std::unordered_map<std::int64_t, std::string> target;
    for (const auto& t : transfers) target[t.id] = t.to;
    return casBatch(
        sql("transfer"),
        {Param(store::arrayLiteral(std::span<const std::int64_t>(ids))),
         Param(store::arrayLiteral(std::span<const std::optional<std::string>>(from))),
         Param(store::arrayLiteral(std::span<const std::string>(to)))},
        ids, [&](std::int64_t id, const std::optional<std::optional<std::string>>& state) {
          return state && *state && **state == target[id];
        });
  }

  BatchResult complete(std::span<const OwnedJob> jobs) override {
    auto [ids, owners] = split(jobs);
    // After an in-doubt delete, a job that is gone counts as completed: only its owner deletes it.
    return casBatch(sql("complete"),
                    {Param(store::arrayLiteral(std::span<const std::int64_t>(ids))),
                     Param(store::arrayLiteral(std::span<const std::optional<std::string>>(owners)))},
                    ids, [](std::int64_t, const auto& state) { return !state.has_value(); });
  }

  BatchResult unlock(std::span<const OwnedJob> jobs) override {
    auto [ids, owners] = split(jobs);
    return casBatch(sql("unlock"),
                    {Param(store::arrayLiteral(std::span<const std::int64_t>(ids))),
                     Param(store::arrayLiteral(std::span<const std::optional<std::string>>(owners)))},
                    ids, [](std::int64_t, const auto& state) { return state && !*state; });
  }

  std::vector<FailResult> fail(std::span<const Failure> failures) override {
    if (failures.empty()) return {};
    const auto params = failParams(failures, false);
    // Not retried after a lost connection: the job may already be rescheduled or moved, and
    // running it again would count a second attempt. The caller gets InDoubt.
    PgResult r = withRetry([&] { return m_conn.exec(sql("fail"), params, Phase::Write); });
    return failOutcomes(failures, r);
  }

  // --- held-lock batches ------------------------------------------------------------------------
  std::vector<Job> openBatch(const ReserveRequest& req, int limit) override {
    validateRange(req);
    if (m_batchOpen) throw std::logic_error("openBatch: a batch is already open on this connection");
    if (!m_conn.ok()) reconnectWithBackoff();
    try {
      m_conn.simple("BEGIN", Phase::Idle);
      m_batchOpen = true;
      std::vector<Param> params{Param(req.queue), num(req.min_priority), num(req.max_priority),
                                num(std::max(0, limit)), num(std::max<std::int64_t>(0, req.forced_latency.count()))};
      if (req.after) {
        params.push_back(num(req.after->priority));
        params.push_back(num(store::micros(req.after->run_at)));
        params.push_back(num(req.after->id));
      }
      PgResult r = m_conn.exec(req.after ? sql("claim_held_after") : sql("claim_held"), params, Phase::InTxn,
                               PgConnection::ResultFormat::Binary);
      std::vector<Job> jobs;
      jobs.reserve(static_cast<std::size_t>(r.rows()));
      const ClaimedRowReader job(r);
      for (int i = 0; i < r.rows(); ++i) jobs.push_back(job(i));
      return jobs;
    } catch (...) {
      abandonBatch();
      throw;
    }
  }

  store::HeldCloseResult closeBatch(const store::HeldClose& c) override {
    if (!m_batchOpen) throw std::logic_error("closeBatch: no batch is open on this connection");
    store::HeldCloseResult out;
    auto collect = [](const PgResult& r, const std::vector<std::int64_t>& ids, BatchResult& into) {
      std::unordered_set<std::int64_t> applied;
      collectIds(r, applied);
      for (auto id : ids) (applied.count(id) ? into.applied : into.mismatched).push_back(id);
    };
    try {
      if (!c.completes.empty()) {
        const std::vector<std::int64_t> ids(c.completes.begin(), c.completes.end());
        PgResult r = m_conn.exec(sql("complete_held"),
                                 {Param(store::arrayLiteral(std::span<const std::int64_t>(ids)))},
                                 Phase::InTxn);
        ++out.statements;
        collect(r, ids, out.completes);
      }
      if (!c.failures.empty()) {
        PgResult r = m_conn.exec(sql("fail"), failParams(c.failures, true), Phase::InTxn);
        ++out.statements;
        out.failures = failOutcomes(c.failures, r);
      }
      if (!c.promotions.empty()) {
        std::vector<std::int64_t> ids;
        std::vector<std::optional<std::string>> from;
        std::vector<std::string> to;
        for (const auto& p : c.promotions) {
          ids.push_back(p.id);
          from.emplace_back(std::nullopt);
          to.push_back(p.to);
        }
        PgResult r = m_conn.exec(
            sql("transfer"),
            {Param(store::arrayLiteral(std::span<const std::int64_t>(ids))),
             Param(store::arrayLiteral(std::span<const std::optional<std::string>>(from))),
             Param(store::arrayLiteral(std::span<const std::string>(to)))},
            Phase::InTxn);
        ++out.statements;
        collect(r, ids, out.promotions);
      }
      m_conn.simple("COMMIT", Phase::Write);
      ++out.statements;
      m_batchOpen = false;
    } catch (...) {
      abandonBatch();
      throw;
    }
    return out;
  }

  bool batchOpen() const noexcept override { return m_batchOpen; }

  // --- recovery and maintenance -----------------------------------------------------------------
  int unlockOrphanedJobs(const std::string& host, std::optional<int> pid) override {
    const std::string prefix = host + ":";
    const std::string pattern =
        likeEscape(prefix) + (pid ? std::to_string(*pid) : std::string("%"));
    PgResult r = withRetry([&] { return m_conn.exec(sql("locked_like"), {Param(pattern)}, Phase::Read); });
    std::vector<Failure> dead;
    const int idCol = r.column("id"), lockedByCol = r.column("locked_by"), lockedAtCol = r.column("locked_at_us");
    for (int i = 0; i < r.rows(); ++i) {
      const std::string lockedBy = r.str(i, lockedByCol);
      const std::string suffix = lockedBy.substr(prefix.size());
      if (suffix.empty() || suffix.size() > 9 ||
          !std::all_of(suffix.begin(), suffix.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
        continue;  // "host:notanumber" is somebody else's naming scheme: leave it alone
      }
      const int owner = std::stoi(suffix);
      if (pid && owner != *pid) continue;
      const std::int64_t lockedAt = r.i64(i, lockedAtCol);
      bool isDead = pid.has_value();  // the caller reaped it
      if (!isDead) isDead = processDead(owner, lockedAt);
      if (isDead) dead.push_back(Failure{r.i64(i, idCol), lockedBy, "process died", std::nullopt, true, false});
    }
    if (dead.empty()) return 0;
    int handled = 0;
    for (const auto& f : fail(dead)) handled += f.outcome != FailOutcome::Mismatch ? 1 : 0;
    return handled;
  }

  int rescheduleLockedBy(std::span<const std::string> names, const std::string& error) override {
    if (names.empty()) return 0;
    const std::string arr = store::arrayLiteral(names);
    PgResult r = withRetry([&] { return m_conn.exec(sql("locked_by_any"), {Param(arr)}, Phase::Read); });
    std::vector<Failure> failures;
    const int idCol = r.column("id"), lockedByCol = r.column("locked_by");
    for (int i = 0; i < r.rows(); ++i) {
      failures.push_back(Failure{r.i64(i, idCol), r.str(i, lockedByCol), error, std::nullopt, true, false});
    }
    int handled = 0;
    for (const auto& f : fail(failures)) handled += f.outcome != FailOutcome::Mismatch ? 1 : 0;
    return handled;
  }

  std::int64_t countLockedBy(const std::string& name) override {
    return withRetry([&] {
      const PgResult r = m_conn.exec(sql("count_locked_by"), {Param(name)}, Phase::Read);
      return r.i64(0, r.column("locked"));
    });
  }

  int clearLocks(const std::string& name) override {
    // Idempotent, so a loss is handled like a lost read (Phase::Read) and the statement re-run;
    // the count may then miss rows the lost attempt already unlocked.
    return withRetry([&] {
      return static_cast<int>(m_conn.exec(sql("clear_locks"), {Param(name)}, Phase::Read).affected());
    });
  }

  std::optional<int> unlockOrphanedPrefetchedJobs(std::chrono::seconds olderThan) override {
    PgResult r = withRetry(  // idempotent like clearLocks
        [&] { return m_conn.exec(sql("purge_prefetched"), {num(olderThan.count())}, Phase::Read); });
    if (!r.boolean(0, r.column("got"))) return std::nullopt;
    return r.i32(0, r.column("unlocked"));
  }

  int hold(std::span<const JobId> ids) override {
    const std::string arr = store::arrayLiteral(ids);
    return withRetry([&] { return static_cast<int>(m_conn.exec(sql("hold"), {Param(arr)}, Phase::Write).affected()); });
  }

  int unhold(std::span<const JobId> ids) override {
    const std::string arr = store::arrayLiteral(ids);
    return withRetry([&] { return static_cast<int>(m_conn.exec(sql("unhold"), {Param(arr)}, Phase::Write).affected()); });
  }

  JobId requeueFailed(JobId failedId) override {
    PgResult r = withRetry([&] { return m_conn.exec(sql("requeue"), {num(failedId)}, Phase::Write); });
    if (r.rows() == 0) throw ValidationError("no failed job with id " + std::to_string(failedId));
    return r.i64(0, r.column("id"));
  }

  std::optional<Job> find(JobId id) override {
    PgResult r = withRetry([&] { return m_conn.exec(sql("find"), {num(id)}, Phase::Read); });
    if (r.rows() == 0) return std::nullopt;
    return JobRowReader(r)(0);
  }

  std::optional<Job> findFailed(JobId id) override {
    PgResult r = withRetry([&] { return m_conn.exec(sql("find_failed"), {num(id)}, Phase::Read); });
    if (r.rows() == 0) return std::nullopt;
    return JobRowReader(r, JobRowReader::Table::Failed)(0);
  }

  std::vector<Job> list(ListFlavor flavor, const std::string& key, int limit, int offset) override {
    const store::Statement* st = nullptr;
    switch (flavor) {
      case ListFlavor::Current: st = &sql("list_current"); break;
      case ListFlavor::Future: st = &sql("list_future"); break;
      case ListFlavor::Running: st = &sql("list_running"); break;
      case ListFlavor::Failed: st = &sql("list_failed"); break;
      case ListFlavor::Strand: st = &sql("list_strand"); break;
      case ListFlavor::Tag: st = &sql("list_tag"); break;
    }
    PgResult r = withRetry(
        [&] { return m_conn.exec(*st, {Param(key), num(limit), num(offset)}, Phase::Read); });
    std::vector<Job> out;
    const JobRowReader job(r, flavor == ListFlavor::Failed ? JobRowReader::Table::Failed : JobRowReader::Table::Delayed);
    for (int i = 0; i < r.rows(); ++i) out.push_back(job(i));
    return out;
  }

  std::vector<QueueCount> counts() override {
    // Every job (no selection), per queue.
    PgResult r = withRetry([&] {
      return m_conn.exec(sql("job_counts"), {std::nullopt, std::nullopt, std::nullopt, std::nullopt, Param("queue")},
                         Phase::Read);
    });
    std::vector<QueueCount> out;
    for (const auto& c : store::readCounts(r)) {
      out.push_back(QueueCount{c.key, c.queued, c.future, c.blocked, c.running, c.prefetched, c.held, c.failed});
    }
    return out;
  }

  bool hasRunnable(const std::string& queue, int minPriority, int maxPriority) override {
    PgResult r = withRetry([&] {
      return m_conn.exec(sql("has_runnable"), {Param(queue), num(minPriority), num(maxPriority)},
                         Phase::Read);
    });
    return r.boolean(0, r.column("runnable"));
  }

  // --- wake-ups ---------------------------------------------------------------------------------
  void listen() override {
    withRetry([&] { m_conn.simple(sql("listen"), Phase::Read); return 0; });
    m_listening = true;
  }

  int drainNotifications() override {
    if (!m_conn.ok()) return 0;
    if (PQconsumeInput(m_conn.raw()) == 0) {
      // The socket reported readable but the session is gone; the next statement reconnects.
      return 0;
    }
    int n = 0;
    while (PGnotify* note = PQnotifies(m_conn.raw())) {
      ++n;
      PQfreemem(note);
    }
    return n;
  }

  int socket() const override { return m_conn.raw() != nullptr ? PQsocket(m_conn.raw()) : -1; }

  // --- plumbing ---------------------------------------------------------------------------------
  void exec(const std::string& text) override { m_conn.simple(text, Phase::Write); }
  std::uint64_t statementsExecuted() const override { return m_conn.statements(); }
  void reconnect() override {
    m_conn.close();
    reconnectWithBackoff();
  }
  bool connected() const override { return m_conn.ok(); }
  void ping() override { m_conn.exec(sql("ping"), {}, Phase::Read); }

 private:
  /// BEGIN now, ROLLBACK on scope exit unless committed. COMMIT is the one write whose loss
  /// leaves the outcome unknown (Phase::Write → InDoubt); everything before it is rolled back
  /// by the server if the session dies, so the whole block may be retried.
  class Transaction {
   public:
    explicit Transaction(PgStore& s) : m_s(s) { m_s.m_conn.simple("BEGIN", Phase::Idle); }
    void commit() {
      m_done = true;
      m_s.m_conn.simple("COMMIT", Phase::Write);
    }
    ~Transaction() {
      if (m_done || !m_s.m_conn.ok()) return;
      try {
        m_s.m_conn.simple("ROLLBACK", Phase::Idle);
      } catch (...) {  // the connection is beyond help; the next call reconnects
      }
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

   private:
    PgStore& m_s;
    bool m_done = false;
  };

  static bool isPlain(const NewJob& j) { return !j.strand && !j.n_strand && !j.singleton; }

  /// The rules of every new job, then the one that needs the database clock.
  void validate(const NewJob& j) const {
    store::validateNewJob(j);
    if (j.strand || j.n_strand) {
      // A stranded job far in the future would block its whole strand until then (inst-jobs).
      // The database clock is estimated from the offset sampled at connect: good to a few ms,
      // against a 10 s grace, and it saves a round trip.
      const auto grace = std::chrono::duration_cast<std::chrono::microseconds>(m_options.stranded_run_at_grace);
      bool tooLate = false;
      if (j.run_at) {
        tooLate = store::micros(*j.run_at) > nowMicros() + m_conn.clockOffset().count() + grace.count();
      } else if (j.run_in) {
        tooLate = *j.run_in > grace;
      }
      if (tooLate) {
        throw ValidationError("a stranded job's run_at may be at most " +
                              std::to_string(m_options.stranded_run_at_grace.count()) + " s ahead");
      }
    }
  }

  Enqueued insert(const NewJob& j, Phase phase) {
    std::optional<std::string> strand = j.strand ? j.strand : j.n_strand;
    const int maxConcurrent = j.n_strand ? j.max_concurrent.value_or(1) : 1;
    const std::array<Param, 13> params{
        num(j.priority),
        Param(j.payload),
        Param(j.queue),
        j.run_at ? num(store::micros(*j.run_at)) : std::nullopt,
        j.run_in ? num(j.run_in->count()) : std::nullopt,
        Param(j.tag),
        num(j.max_attempts.value_or(m_options.default_max_attempts)),
        strand,
        j.source,
        num(maxConcurrent),
        j.expires_at ? num(store::micros(*j.expires_at)) : std::nullopt,
        j.singleton,
        Param(onConflictName(j.on_conflict.value_or(OnConflict::UseEarliest)))};
    PgResult r = m_conn.exec(sql("insert"), params, phase);
    if (r.rows() == 0) return Enqueued{0, EnqueueResult::Dropped};
    return Enqueued{r.i64(0, r.column("id")),
                    r.boolean(0, r.column("inserted")) ? EnqueueResult::Inserted : EnqueueResult::Updated};
  }

  int currentVersion(Phase phase) {
    // Both through the simple protocol: a prepared statement naming a table that does not exist
    // yet could not be planned, and would stay prepared on this connection.
    const PgResult exists = m_conn.simple(sql("migrations_table_exists"), phase);
    if (!exists.boolean(0, exists.column("present"))) return 0;
    const PgResult version = m_conn.simple(sql("schema_version"), phase);
    return version.i32(0, version.column("version"));
  }

  /// Returns true if the reservation should be retried.
  bool repairSingleton(const std::string& singleton) {
    return withRetry([&] {
      Transaction txn(*this);
      m_conn.exec(sql("singleton_lock"), {Param(singleton)}, Phase::InTxn);
      PgResult r = m_conn.exec(sql("singleton_repair"), {Param(singleton)}, Phase::InTxn);
      const auto running = r.i64(0, r.column("running"));
      const auto fixed = r.i64(0, r.column("fixed"));
      txn.commit();
      // One running twin and nothing to demote: the violation was something else; give up.
      return !(running == 1 && fixed == 0);
    });
  }

  /// An empty expected owner stands for an unlocked row (locked_by IS NULL): a job claimed by
  /// a held-lock batch whose transaction was lost, whose result is written afterwards.
  static std::optional<std::string> owner(const std::string& lockedBy) {
    return lockedBy.empty() ? std::nullopt : std::optional<std::string>(lockedBy);
  }

  static std::pair<std::vector<std::int64_t>, std::vector<std::optional<std::string>>> split(
      std::span<const OwnedJob> jobs) {
    std::pair<std::vector<std::int64_t>, std::vector<std::optional<std::string>>> out;
    for (const auto& j : jobs) {
      out.first.push_back(j.id);
      out.second.push_back(owner(j.locked_by));
    }
    return out;
  }

  /// The fail statement's parameters. `held`: the rows are claimed by this connection's open batch, i.e.
  /// still read locked_by IS NULL.
  std::vector<Param> failParams(std::span<const Failure> failures, bool held) const {
    std::vector<std::int64_t> ids;
    std::vector<std::optional<std::string>> owners;
    std::vector<std::string> errors;
    std::vector<std::optional<std::string>> runAts;
    std::vector<bool> counts, permanents;
    for (const auto& f : failures) {
      ids.push_back(f.id);
      owners.push_back(held ? std::nullopt : owner(f.locked_by));
      errors.push_back(f.error);
      runAts.push_back(f.run_at ? std::optional<std::string>(std::to_string(store::micros(*f.run_at)))
                                : std::nullopt);
      counts.push_back(f.count_attempt);
      permanents.push_back(f.permanent);
    }
    auto boolArray = [](const std::vector<bool>& v) {
      std::string out = "{";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::string(v[i] ? "t" : "f");
      return out + "}";
    };
    return {Param(store::arrayLiteral(std::span<const std::int64_t>(ids))),
            Param(store::arrayLiteral(std::span<const std::optional<std::string>>(owners))),
            Param(store::arrayLiteral(std::span<const std::string>(errors))),
            Param(store::arrayLiteral(std::span<const std::optional<std::string>>(runAts))),
            Param(boolArray(counts)),
            Param(boolArray(permanents)),
            num(m_options.default_max_attempts),
            Param(m_options.keep_failed_jobs ? "t" : "f")};
  }

  std::vector<FailResult> failOutcomes(std::span<const Failure> failures, const PgResult& r) const {
    std::unordered_map<std::int64_t, FailResult> done;
    const int id = r.column("id"), permanent = r.column("permanent"), attempts = r.column("new_attempts"),
              run_at = r.column("run_at_us");
    for (int i = 0; i < r.rows(); ++i) {
      FailResult fr{r.i64(i, id), FailOutcome::Rescheduled, r.i32(i, attempts), std::nullopt};
      if (r.boolean(i, permanent)) fr.outcome = m_options.keep_failed_jobs ? FailOutcome::MovedToFailedJobs : FailOutcome::Deleted;
      else if (auto at = r.optI64(i, run_at)) fr.run_at = TimePoint{std::chrono::microseconds{*at}};
      done[fr.id] = fr;
    }
    std::vector<FailResult> out;
    for (const auto& f : failures) {
      FailResult fr{f.id, FailOutcome::Mismatch, 0, std::nullopt};
      if (auto it = done.find(f.id); it != done.end()) {
        fr = it->second;
        done.erase(it);  // a duplicate id in the batch is applied once
      }
      out.push_back(fr);
    }
    return out;
  }

  /// Gives up the open batch: ROLLBACK if the connection still works, else drop it (the server
  /// rolls back a dead session's transaction).
  void abandonBatch() noexcept {
    if (!m_batchOpen) return;
    m_batchOpen = false;
    try {
      if (m_conn.ok()) m_conn.simple("ROLLBACK", Phase::Idle);
    } catch (...) {
      m_conn.close();
    }
  }

  /// The ids a CAS statement returned (those it applied to).
  static void collectIds(const PgResult& r, std::unordered_set<std::int64_t>& into) {
    const int id = r.column("id");
    for (int i = 0; i < r.rows(); ++i) into.insert(r.i64(i, id));
  }

  /// One CAS statement for the batch. If the connection dies with the statement in flight, the
  /// effect is re-checked instead of guessed: after reconnecting, rows already in the target
  /// state count as applied (`reached(id, state)`, state = nullopt when the row is gone, else its
  /// locked_by), and the CAS is re-run for the rest, which is safe because it re-checks locked_by.
  template <class Reached>
  BatchResult casBatch(const store::Statement& st, std::initializer_list<Param> paramList,
                       const std::vector<std::int64_t>& ids, Reached reached) {
    BatchResult out;
    if (ids.empty()) return out;
    std::vector<Param> params(paramList);
    std::unordered_set<std::int64_t> applied;
    try {
      const PgResult r = withRetry([&] { return m_conn.exec(st, params, Phase::Write); });
      collectIds(r, applied);
    } catch (const DbError& e) {
      if (!e.isInDoubt()) throw;
      reconnectWithBackoff();
      PgResult states = withRetry([&] {
        return m_conn.exec(sql("lock_states"), {params[0]}, Phase::Read);
      });
      std::unordered_map<std::int64_t, std::optional<std::string>> now;
      const int idCol = states.column("id"), lockedByCol = states.column("locked_by");
      for (int i = 0; i < states.rows(); ++i) now[states.i64(i, idCol)] = states.optStr(i, lockedByCol);
      for (auto id : ids) {
        auto it = now.find(id);
        const auto state = it == now.end() ? std::optional<std::optional<std::string>>()
                                           : std::optional<std::optional<std::string>>(it->second);
        if (reached(id, state)) applied.insert(id);
      }
      // A second loss now is reported as InDoubt again: the caller reconciles.
      const PgResult again = withRetry([&] { return m_conn.exec(st, params, Phase::Write); });
      collectIds(again, applied);
    }
    for (auto id : ids) (applied.count(id) ? out.applied : out.mismatched).push_back(id);
    return out;
  }

  bool processDead(int pid, std::int64_t lockedAtDbMicros) const {
    if (pid <= 0) return false;
    if (::kill(pid, 0) != 0) return errno == ESRCH;  // EPERM: it exists, owned by someone else
    // The pid is taken, but maybe by a process started after the job was locked: then the
    // locker died and the pid was reused. locked_at is on the database clock; btime has 1 s
    // resolution; the 2 s margin keeps a live worker from ever being judged dead by rounding.
    const auto started = processStartMicros(pid);
    if (!started) return false;
    const auto lockedAtLocal = lockedAtDbMicros - m_conn.clockOffset().count();
    return *started > lockedAtLocal + 2'000'000;
  }

  void reconnectWithBackoff() {
    auto pause = std::chrono::milliseconds(50);
    for (int attempt = 0;; ++attempt) {
      try {
        m_conn.open();
        if (m_listening) m_conn.simple(sql("listen"), Phase::Read);
        return;
      } catch (const DbError&) {
        if (attempt + 1 >= std::max(1, m_options.reconnect_attempts)) throw;
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(2000));
      }
    }
  }

  /// Runs `f`, reconnecting first if needed. Retries server-side rollbacks (Retryable) and
  /// failures that cannot have had an effect (ConnectionLost: the statement was a read, never
  /// left, or its transaction was rolled back). InDoubt is never retried here.
  template <class F>
  auto withRetry(F&& f) -> decltype(f()) {
    for (int attempt = 0;; ++attempt) {
      if (!m_conn.ok()) reconnectWithBackoff();
      try {
        return f();
      } catch (const DbError& e) {
        if (attempt >= kMaxRetries) throw;
        if (e.kind() == DbErrorKind::Retryable) continue;
        if (e.kind() == DbErrorKind::ConnectionLost) {
          m_conn.close();
          continue;
        }
        if (e.kind() == DbErrorKind::InDoubt) m_conn.close();
        throw;
      }
    }
  }

  StoreOptions m_options;
  store::PgConnection m_conn;
  bool m_listening = false;
  bool m_batchOpen = false;  ///< a held-lock batch's transaction is open on m_conn
};

}  // namespace

namespace store {
HeldClaims& heldClaims(Store& s) { return dynamic_cast<PgStore&>(s); }
}  // namespace store

std::unique_ptr<Store> Store::connect(const std::string& url, StoreOptions options) {
  return std::make_unique<PgStore>(url, std::move(options));
}

int Store::latestSchemaVersion() {
  int latest = 0;
  for (std::size_t i = 0; i < detail::kSqlFileCount; ++i) {
    latest = std::max(latest, migrationVersion(detail::kSqlFiles[i].first));
  }
  return latest;
}

}  // namespace hostq
