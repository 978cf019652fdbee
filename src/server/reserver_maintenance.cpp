// The reserver's maintenance on the loop's own connection: the start-up release after a restart,
// the farm-wide purge of orphaned prefetch, reconnecting and repairing an in-doubt reservation,
// and the error classification every such call goes through.
#include <spdlog/spdlog.h>

#include <unordered_set>

#include "server/reserver.hpp"

namespace hostq::server {

void Reserver::periodicPurge(SteadyClock::time_point now) {
  if (now < m_nextPurge) return;
  m_nextPurge = now + m_settings.orphan_purge_interval;
  guarded("purge orphaned prefetch", [&] {
    auto n = m_store.unlockOrphanedPrefetchedJobs(std::chrono::duration_cast<std::chrono::seconds>(
        m_settings.prefetched_jobs_timeout * 4));
    ++m_stats.statements.maintenance;
    if (n && *n > 0) spdlog::info("released {} orphaned prefetched jobs", *n);
  });
}

bool Reserver::startupRelease(SteadyClock::time_point now) {
  if (m_startupReleased) return false;
  // Until the grace ends, workers of a previous server incarnation reconnect and claim what they
  // hold; only then can this host's stale `prefetch:` locks be released without freeing a job a
  // worker is running. With nothing locked under our prefetch name there is nothing to protect,
  // so a first start does not wait.
  if (!m_graceChecked) {
    m_graceChecked = true;
    std::int64_t held = 1;
    if (guarded("start-up check", [&] { held = m_store.countLockedBy(m_prefetchOwner); })) {
      ++m_stats.statements.maintenance;
      if (held == 0 && !(heldMode() && m_expectReconnects)) m_startedAt = now - m_settings.restart_grace;
    }
  }
  if (now - m_startedAt < m_settings.restart_grace) return false;
  // Adopted jobs' transfers must be written before the release, or it would free them.
  if (!m_pendingTransfers.empty() || m_writer.busy()) {
    submitWrites(now, true);
    return false;
  }
  bool ok = guarded("startup release", [&] {
    const int released = m_store.clearLocks(m_prefetchOwner);
    ++m_stats.statements.maintenance;
    if (released > 0) spdlog::info("released {} jobs prefetched by a previous server", released);
    const int orphans = m_store.unlockOrphanedJobs(m_host);
    ++m_stats.statements.maintenance;
    if (orphans > 0) spdlog::info("rescheduled {} jobs of dead workers on {}", orphans, m_host);
  });
  if (ok) m_startupReleased = true;
  return ok;
}

bool Reserver::restoreDatabase(SteadyClock::time_point now) {
  if (now < m_dbRetryAt) return false;
  try {
    m_store.reconnect();
    m_dbUp = true;
    m_dbBackoff = std::chrono::milliseconds(50);
    ++m_stats.db_reconnects;
    spdlog::info("database connection re-established");
  } catch (const std::exception& e) {
    m_dbRetryAt = now + m_dbBackoff;
    m_dbBackoff = std::min(m_dbBackoff * 2, std::chrono::milliseconds(2000));
    spdlog::warn("database reconnect failed: {}", e.what());
    return false;
  }
  if (m_reserveInDoubt) repairInDoubtReservation();
  return true;
}

void Reserver::repairInDoubtReservation() {
  // A reservation died with the connection; if it committed, rows are locked under names that
  // nobody is serving. The prefetch owner's unknown rows go back now.
  std::unordered_set<JobId> known;
  for (auto& g : m_groups)
    for (auto& p : g.prefetched) known.insert(p.job.id);
  m_ledger.forEach([&](JobId id, const JobLedger::Entry&) { known.insert(id); });
  guarded("release in-doubt reservation", [&] {
    auto rows = m_store.list(ListFlavor::Running, "", 100000, 0);
    std::vector<OwnedJob> stray;
    for (auto& j : rows) {
      if (!j.locked_by || known.count(j.id)) continue;
      bool ours = *j.locked_by == m_prefetchOwner;
      for (auto& n : m_reserveInDoubtNames)
        if (*j.locked_by == n) ours = true;
      if (ours) stray.push_back(OwnedJob{j.id, *j.locked_by});
    }
    if (!stray.empty()) m_store.unlock(stray);
    m_reserveInDoubt = false;
    m_reserveInDoubtNames.clear();
  });
}

void Reserver::noteDbDown() {
  m_dbUp = false;
  m_dbRetryAt = SteadyClock::now() + m_dbBackoff;
}

bool Reserver::guarded(const char* what, const std::function<void()>& fn) {
  const auto t0 = SteadyClock::now();
  struct Timer {
    ServerStats& s;
    SteadyClock::time_point t0;
    ~Timer() {
      const auto ns = nanosSince(t0, SteadyClock::now());
      s.db_statement.record(ns);
      s.db_busy_ns += ns;
    }
  } timer{m_stats, t0};
  try {
    fn();
    return true;
  } catch (const DbError& e) {
    ++m_stats.db_errors;
    switch (e.kind()) {
      case DbErrorKind::ConnectionLost:
      case DbErrorKind::InDoubt:
        spdlog::warn("{}: database connection lost ({}); will reconnect", what, e.what());
        if (std::string_view(what) == "reserve") m_reserveInDoubt = true;
        noteDbDown();
        return false;
      case DbErrorKind::Retryable:
        spdlog::info("{}: transient database error, retrying: {}", what, e.what());
        return false;
      case DbErrorKind::GiveUp:
        break;
    }
    spdlog::error("{}: database error: {}", what, e.what());
    throw;
  }
}

}  // namespace hostq::server
