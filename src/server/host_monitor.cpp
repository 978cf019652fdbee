#include "server/host_monitor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "store/maintenance_store.hpp"
#include "store/pg_connection.hpp"

namespace hostq::server {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kAuditInterval = std::chrono::seconds(1);
/// How often the live hosts are counted (the claim mode follows them: held_max_hosts).
constexpr auto kLiveHostsInterval = std::chrono::seconds(1);
constexpr const char* kPeriodicPrefix = "periodic: ";

}  // namespace

std::chrono::milliseconds HostMonitor::heartbeatInterval(std::chrono::milliseconds hostTimeout) {
  if (hostTimeout.count() == 0) return std::chrono::seconds(5);
  return std::clamp<std::chrono::milliseconds>(hostTimeout / 4, std::chrono::milliseconds(250),
                                                std::chrono::seconds(5));
}

HostMonitor::HostMonitor(HostMonitorOptions options) : m_o(std::move(options)) {
  for (const auto& p : m_o.periodic_jobs) {
    m_periodic.emplace_back(p, CronSchedule::parse(p.cron));
    m_singletons.push_back(kPeriodicPrefix + p.name);
  }
}

HostMonitor::~HostMonitor() { stop(); }

void HostMonitor::start() {
  // The first heartbeat is written before start() returns, so before the server claims: a host
  // that locks jobs and dies before its first beat has no row, and the reaper never touches the
  // locks of a host without one. (Seen under the sanitizers: host-a frozen right after its first
  // claim was never reaped.) A database that is down now is the thread's to retry.
  bool beaten = false;
  try {
    (void)beat();
    beaten = true;
  } catch (const std::exception& e) {
    spdlog::warn("host monitor: first heartbeat: {}", e.what());
  }
  m_thread = std::thread([this, beaten] { run(beaten); });
}

void HostMonitor::stop(bool signOff) {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) m_thread.join();
  if (!signOff) return;
  try {
    connect();
    if (m_maint->signOff(m_o.host, m_o.pid)) spdlog::info("host {} signed off: it will not be declared dead", m_o.host);
  } catch (const std::exception& e) {
    spdlog::warn("host monitor: signing off: {}", e.what());
  }
}

void HostMonitor::connect() {
  StoreOptions so = m_o.store;
  so.application_name = "hostq server monitor " + m_o.host;
  if (!m_maint) m_maint = std::make_unique<store::MaintenanceStore>(m_o.database_url, so);
  if (!m_store) m_store = Store::connect(m_o.database_url, so);
}

bool HostMonitor::beat() {
  connect();
  const bool declared = m_maint->beat(m_o.host, m_o.pid, m_o.host_timeout);
  countLiveHosts();
  const bool first = std::exchange(m_firstBeat, false);
  return declared && !first;
}

void HostMonitor::countLiveHosts() {
  connect();
  m_liveHosts.store(std::max(1, m_maint->liveHosts()), std::memory_order_relaxed);
}

int HostMonitor::reapDeadHosts() {
  connect();
  const bool locked = m_maint->tryLockReaper();
  if (locked) {
    m_reaperLockMisses = 0;
  } else if (++m_reaperLockMisses < kReaperLockPatience) {
    return -1;
  } else if (m_reaperLockMisses == kReaperLockPatience) {
    spdlog::warn("the dead-host reaper lock has been held elsewhere for {} rounds (a frozen server?): reaping without it",
                 m_reaperLockMisses);
  }
  int handled = 0;
  try {
    for (const auto& host : m_maint->declareDeadHosts(m_o.host)) {
      const auto silent = (host.declared_dead_us - host.heartbeat_us) / 1'000'000;
      const std::string error = "host died: no heartbeat from " + host.hostname + " for " + std::to_string(silent) + " s";
      std::vector<Failure> running;
      std::vector<OwnedJob> prefetched;
      for (auto& job : m_maint->jobsLockedBy(host)) {
        if (job.locked_by.starts_with("prefetch:")) {
          prefetched.push_back(OwnedJob{job.id, std::move(job.locked_by)});
        } else {
          running.push_back(Failure{job.id, std::move(job.locked_by), error, std::nullopt, true, false});
        }
      }
      // Both are compare-and-set on locked_by: a job its owner finished or released meanwhile is
      // left alone.
      int rescheduled = 0;
      if (!running.empty()) {
        for (const auto& r : m_store->fail(running)) rescheduled += r.outcome != FailOutcome::Mismatch ? 1 : 0;
      }
      const int released = prefetched.empty() ? 0 : static_cast<int>(m_store->unlock(prefetched).applied.size());
      m_maint->markReaped(host);
      spdlog::log(rescheduled + released > 0 ? spdlog::level::warn : spdlog::level::info,
                  "host {} declared dead (no heartbeat for {} s): {} running job(s) rescheduled, {} prefetched released",
                  host.hostname, silent, rescheduled, released);
      handled += rescheduled + released;
    }
  } catch (...) {
    try {
      if (locked) m_maint->unlockReaper();
    } catch (...) {  // the lock goes with the connection
    }
    throw;
  }
  if (locked) m_maint->unlockReaper();
  return handled;
}

int HostMonitor::schedulePeriodic() {
  if (m_periodic.empty()) return 0;
  connect();
  const auto [missing, nowUs] = m_maint->missingSingletons(m_singletons);
  int enqueued = 0;
  for (const auto& singleton : missing) {
    const auto it = std::find(m_singletons.begin(), m_singletons.end(), singleton);
    const auto& [job, cron] = m_periodic[static_cast<std::size_t>(it - m_singletons.begin())];
    // The database clock: a host whose clock runs behind must not enqueue a tick again that
    // another host's run already covers.
    const auto next = cron.next(store::fromMicros(nowUs));
    if (!next) continue;  // "0 0 30 2 *": never
    NewJob j;
    j.tag = job.tag;
    j.payload = job.payload;
    j.queue = job.queue;
    j.priority = job.priority;
    j.max_attempts = job.max_attempts;
    j.singleton = singleton;
    j.on_conflict = OnConflict::Patient;  // another server was first: keep its row
    j.run_at = *next;
    const auto e = m_store->enqueue(j);
    if (e.result == EnqueueResult::Inserted) {
      ++enqueued;
      spdlog::info("periodic job \"{}\": next run enqueued as job {}", job.name, e.id);
    }
  }
  return enqueued;
}

void HostMonitor::run(bool beaten) {
  const auto interval = heartbeatInterval(m_o.host_timeout);
  const auto start = Clock::now();
  auto nextBeat = beaten ? start + interval : start, nextReap = start, nextAudit = start, nextCount = start;
  auto backoff = std::chrono::milliseconds(0);
  std::unique_lock lock(m_mutex);
  while (!m_stop) {
    lock.unlock();
    try {
      const auto now = Clock::now();
      if (now >= nextBeat) {
        nextBeat = now + interval;
        nextCount = now + kLiveHostsInterval;  // beat() counts them too
        if (beat()) {
          spdlog::error("host {} was declared dead by another server and its jobs were rescheduled; restarting",
                        m_o.host);
          if (m_o.on_declared_dead) m_o.on_declared_dead();
        }
      }
      if (now >= nextCount) {
        nextCount = now + kLiveHostsInterval;
        countLiveHosts();
      }
      if (m_o.host_timeout.count() > 0 && now >= nextReap) {
        nextReap = now + interval;
        reapDeadHosts();
      }
      if (!m_periodic.empty() && now >= nextAudit) {
        nextAudit = now + kAuditInterval;
        schedulePeriodic();
      }
      backoff = std::chrono::milliseconds(0);
    } catch (const std::exception& e) {
      m_maint.reset();
      m_store.reset();
      const auto* db = dynamic_cast<const DbError*>(&e);
      if (db != nullptr && db->sqlstate() == "42P01") {
        // A database migrated by an older hostq: the jobs still flow, only this thread waits.
        spdlog::warn("host monitor: {} (run `hostq migrate`); heartbeats and periodic jobs paused", e.what());
        backoff = std::chrono::seconds(30);
      } else {
        spdlog::warn("host monitor: {}", e.what());
        backoff = std::clamp(backoff * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(2000));
      }
    }
    lock.lock();
    auto wake = std::min({nextBeat, nextCount, m_periodic.empty() ? nextBeat : nextAudit});
    if (m_o.host_timeout.count() > 0) wake = std::min(wake, nextReap);
    wake = std::max(wake, Clock::now() + backoff);
    m_cv.wait_until(lock, wake, [this] { return m_stop; });
  }
}

}  // namespace hostq::server
