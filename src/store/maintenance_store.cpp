#include "store/maintenance_store.hpp"

#include <array>

#include "store/pg_retry.hpp"
#include "store/sql_catalog.hpp"

namespace hostq::store {
namespace {

Param num(std::int64_t v) { return std::to_string(v); }

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
    PgResult mark = m_conn.exec(sql("host_mark"), key, Phase::InTxn);
    const bool declared = mark.rows() > 0 && mark.boolean(0, mark.column("declared_dead"));
    const std::array<Param, 3> params{Param(host), num(pid), num(timeout.count())};
    m_conn.exec(sql("host_beat"), params, Phase::InTxn);
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

int MaintenanceStore::liveHosts() {
  const PgResult r = run(sql("live_hosts"), {}, Phase::Read);
  return r.rows() > 0 ? r.i32(0, r.column("live")) : 0;
}

bool MaintenanceStore::tryLockReaper() {
  const PgResult r = run(sql("reaper_try_lock"), {}, Phase::Read);
  return r.boolean(0, r.column("got"));
}

void MaintenanceStore::unlockReaper() {
  // A session lock dies with its connection; only a live one needs the unlock.
  if (m_conn.ok()) m_conn.exec(sql("reaper_unlock"), std::span<const Param>(), Phase::Read);
}

std::vector<DeadHost> MaintenanceStore::declareDeadHosts(const std::string& self) {
  const std::array<Param, 1> params{Param(self)};
  PgResult r = run(sql("declare_dead"), params, Phase::Write);
  std::vector<DeadHost> out;
  const int host = r.column("hostname"), declared = r.column("declared_dead_us"), beat = r.column("heartbeat_us");
  for (int i = 0; i < r.rows(); ++i) out.push_back(DeadHost{r.str(i, host), r.i64(i, declared), r.i64(i, beat)});
  return out;
}

std::vector<LockedJob> MaintenanceStore::jobsLockedBy(const DeadHost& host) {
  const std::array<Param, 2> params{Param(host.hostname), num(host.declared_dead_us)};
  PgResult r = run(sql("locked_by_host"), params, Phase::Read);
  std::vector<LockedJob> out;
  const int id = r.column("id"), lockedBy = r.column("locked_by");
  for (int i = 0; i < r.rows(); ++i) out.push_back(LockedJob{r.i64(i, id), r.str(i, lockedBy)});
  return out;
}

void MaintenanceStore::markReaped(const DeadHost& host) {
  const std::array<Param, 2> params{Param(host.hostname), num(host.declared_dead_us)};
  run(sql("mark_reaped"), params, Phase::Write);
}

bool MaintenanceStore::signOff(const std::string& host, int pid) {
  const std::array<Param, 2> params{Param(host), num(pid)};
  return run(sql("host_sign_off"), params, Phase::Write).affected() > 0;
}

std::pair<std::vector<std::string>, std::int64_t> MaintenanceStore::missingSingletons(
    std::span<const std::string> singletons) {
  std::pair<std::vector<std::string>, std::int64_t> out{{}, 0};
  if (singletons.empty()) return out;
  const std::array<Param, 1> params{Param(arrayLiteral(singletons))};
  PgResult r = run(sql("missing_singletons"), params, Phase::Read);
  const int now = r.column("now_us"), singleton = r.column("singleton");
  for (int i = 0; i < r.rows(); ++i) {
    out.second = r.i64(i, now);
    out.first.push_back(r.str(i, singleton));
  }
  return out;
}

}  // namespace hostq::store
