#include "store/maintenance_store.hpp"

#include <array>

#include "store/pg_retry.hpp"
#include "store/statements.hpp"

namespace hostq::store {
namespace {

using sql::kNow;
using sql::us;

Param num(std::int64_t v) { return std::to_string(v); }

const Statement kHostMark{"hostq_host_mark",
                          "SELECT declared_dead_at IS NOT NULL FROM hostq_hosts WHERE hostname = $1::varchar FOR UPDATE"};
const Statement kHostBeat{
    "hostq_host_beat",
    "INSERT INTO hostq_hosts AS h (hostname, pid, heartbeat_at, host_timeout_ms)"
    " VALUES ($1::varchar, $2::int, " + kNow + ", $3::int)"
    " ON CONFLICT (hostname) DO UPDATE SET pid = EXCLUDED.pid, heartbeat_at = EXCLUDED.heartbeat_at,"
    "   host_timeout_ms = EXCLUDED.host_timeout_ms, declared_dead_at = NULL, reaped_at = NULL"};

// Advisory locks are database-wide; a farm is one jobs table, i.e. one schema.
const std::string kReaperKey = "half_md5_as_bigint('hostq:reap_dead_hosts:' || current_schema())";
const Statement kReaperTryLock{"hostq_reaper_try_lock", "SELECT pg_try_advisory_lock(" + kReaperKey + ")"};
const Statement kReaperUnlock{"hostq_reaper_unlock", "SELECT pg_advisory_unlock(" + kReaperKey + ")"};

// The second branch reads the statement's snapshot, in which the hosts the first one marks were
// not marked yet: no host comes out twice.
const Statement kDeclareDead{
    "hostq_declare_dead",
    "WITH marked AS ("
    "  UPDATE hostq_hosts SET declared_dead_at = " + kNow +
    "   WHERE hostname <> $1::varchar AND declared_dead_at IS NULL AND host_timeout_ms > 0"
    "     AND heartbeat_at < " + kNow + " - host_timeout_ms * interval '1 millisecond'"
    "  RETURNING hostname, declared_dead_at, heartbeat_at) "
    "SELECT hostname, " + us("declared_dead_at") + ", " + us("heartbeat_at") + " FROM marked "
    "UNION ALL "
    "SELECT hostname, " + us("declared_dead_at") + ", " + us("heartbeat_at") + " FROM hostq_hosts"
    " WHERE declared_dead_at IS NOT NULL AND reaped_at IS NULL AND hostname <> $1::varchar"};

// `HOST:DIGITS` (a worker of the host) and `prefetch:HOST`, locked before the host was declared
// dead: a lock taken later is a live server's (the host came back). `locked_by IS NOT NULL` lets
// the planner use the partial index on locked_by, which holds only locked rows.
const Statement kLockedByHost{
    "hostq_locked_by_host",
    "SELECT id, locked_by FROM delayed_jobs"
    " WHERE locked_by IS NOT NULL AND locked_at < " + sql::ts("$2") +
    "   AND (locked_by = 'prefetch:' || $1::text"
    "        OR (left(locked_by, length($1::text) + 1) = $1::text || ':'"
    "            AND substr(locked_by, length($1::text) + 2) ~ '^[0-9]+$'))"
    " ORDER BY id"};

const Statement kMarkReaped{
    "hostq_mark_reaped",
    "WITH forgotten AS (DELETE FROM hostq_hosts WHERE reaped_at < " + kNow + " - interval '7 days') "
    "UPDATE hostq_hosts SET reaped_at = " + kNow +
    " WHERE hostname = $1::varchar AND declared_dead_at = " + sql::ts("$2")};

const Statement kSignOff{
    "hostq_host_sign_off",
    "UPDATE hostq_hosts SET host_timeout_ms = 0 WHERE hostname = $1::varchar AND pid = $2::int"
    "   AND NOT EXISTS (SELECT 1 FROM delayed_jobs WHERE locked_by IS NOT NULL"
    "                    AND (locked_by = 'prefetch:' || $1::text"
    "                         OR left(locked_by, length($1::text) + 1) = $1::text || ':'))"};

const Statement kMissingSingletons{
    "hostq_missing_singletons",
    "SELECT " + us(kNow) + ", s FROM unnest($1::text[]) AS s"
    " WHERE NOT EXISTS (SELECT 1 FROM delayed_jobs d WHERE d.singleton = s"
    "                    AND (d.locked_by IS NULL OR d.locked_by = 'on hold'))"};

}  // namespace

MaintenanceStore::MaintenanceStore(std::string url, StoreOptions options)
    : m_conn(std::move(url), std::move(options)) {
  m_conn.open();
}

PgResult MaintenanceStore::run(const Statement& st, std::span<const Param> params, Phase phase) {
  return execRetrying(m_conn, st, params, phase);
}

bool MaintenanceStore::beat(const std::string& host, int pid, std::chrono::milliseconds timeout) {
  if (!m_conn.ok()) m_conn.open();
  // The row lock orders us after a reaper's mark: we either see its mark or it sees our beat.
  m_conn.simple("BEGIN", Phase::Idle);
  try {
    const std::array<Param, 1> key{Param(host)};
    PgResult mark = m_conn.exec(kHostMark, key, Phase::InTxn);
    const bool declared = mark.rows() > 0 && mark.boolean(0, 0);
    const std::array<Param, 3> params{Param(host), num(pid), num(timeout.count())};
    m_conn.exec(kHostBeat, params, Phase::InTxn);
    m_conn.simple("COMMIT", Phase::Write);
    return declared;
  } catch (...) {
    if (m_conn.ok()) {
      try {
        m_conn.simple("ROLLBACK", Phase::Idle);
      } catch (...) {  // the connection is beyond help; the next call reconnects
        m_conn.close();
      }
    }
    throw;
  }
}

bool MaintenanceStore::tryLockReaper() { return run(kReaperTryLock, {}, Phase::Read).boolean(0, 0); }

void MaintenanceStore::unlockReaper() {
  // A session lock dies with its connection; only a live one needs the unlock.
  if (m_conn.ok()) m_conn.exec(kReaperUnlock, std::span<const Param>(), Phase::Read);
}

std::vector<DeadHost> MaintenanceStore::declareDeadHosts(const std::string& self) {
  const std::array<Param, 1> params{Param(self)};
  PgResult r = run(kDeclareDead, params, Phase::Write);
  std::vector<DeadHost> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(DeadHost{r.str(i, 0), r.i64(i, 1), r.i64(i, 2)});
  return out;
}

std::vector<LockedJob> MaintenanceStore::jobsLockedBy(const DeadHost& host) {
  const std::array<Param, 2> params{Param(host.hostname), num(host.declared_dead_us)};
  PgResult r = run(kLockedByHost, params, Phase::Read);
  std::vector<LockedJob> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(LockedJob{r.i64(i, 0), r.str(i, 1)});
  return out;
}

void MaintenanceStore::markReaped(const DeadHost& host) {
  const std::array<Param, 2> params{Param(host.hostname), num(host.declared_dead_us)};
  run(kMarkReaped, params, Phase::Write);
}

bool MaintenanceStore::signOff(const std::string& host, int pid) {
  const std::array<Param, 2> params{Param(host), num(pid)};
  return run(kSignOff, params, Phase::Write).affected() > 0;
}

std::pair<std::vector<std::string>, std::int64_t> MaintenanceStore::missingSingletons(
    std::span<const std::string> singletons) {
  std::pair<std::vector<std::string>, std::int64_t> out{{}, 0};
  if (singletons.empty()) return out;
  const std::array<Param, 1> params{Param(arrayLiteral(singletons))};
  PgResult r = run(kMissingSingletons, params, Phase::Read);
  for (int i = 0; i < r.rows(); ++i) {
    out.second = r.i64(i, 0);
    out.first.push_back(r.str(i, 1));
  }
  return out;
}

}  // namespace hostq::store
