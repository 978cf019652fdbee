#pragma once
// The server's maintenance thread, on its own two connections, never on the hot path:
//  - heartbeat: every heartbeatInterval() the host's row in hostq_hosts is refreshed, with the
//    host's promise (host_timeout) of how long it may stay silent. If another server declared
//    this host dead meanwhile (it was frozen, partitioned, suspended), on_declared_dead runs: the
//    jobs it held have been rescheduled elsewhere, so the server must not go on as if they were
//    its own.
//  - reaper: under a farm-wide advisory try-lock, hosts silent for longer than their promise are
//    declared dead; the jobs their workers held are rescheduled as a failed attempt ("host died",
//    max_attempts applies) and their prefetched jobs are unlocked. Hosts that never wrote a
//    heartbeat are not known and never touched.
//  - periodic jobs: every second, each configured job without a queued run gets its next tick
//    enqueued as the singleton `periodic: NAME` (ON CONFLICT DO NOTHING), so across any number
//    of servers each tick is enqueued once. Cron times are in UTC on the database clock.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/cron.hpp"
#include "hostq/config.hpp"
#include "store/store.hpp"

namespace hostq::store {
class MaintenanceStore;
}

namespace hostq::server {

struct HostMonitorOptions {
  std::string database_url;
  StoreOptions store;  ///< schema, keep_failed_jobs, default_max_attempts
  std::string host;
  int pid = 0;
  std::chrono::milliseconds host_timeout{60'000};  ///< 0: never declare a host dead, nor be declared
  std::vector<PeriodicJob> periodic_jobs;
  std::function<void()> on_declared_dead;  ///< runs on the monitor's thread
};

class HostMonitor {
 public:
  explicit HostMonitor(HostMonitorOptions options);  ///< throws ValidationError on a bad cron
  ~HostMonitor();
  HostMonitor(const HostMonitor&) = delete;
  HostMonitor& operator=(const HostMonitor&) = delete;

  /// Writes the first heartbeat (before returning: a host that claims has a row the reaper
  /// knows), then starts the thread.
  void start();
  /// Stops the thread. `sign_off`: the server is leaving cleanly, so its host stops promising
  /// heartbeats and is not declared dead later (only if it holds no lock any more).
  void stop(bool sign_off = false);

  // One step each; the thread calls them, tests call them directly. They throw DbError.
  /// Writes the heartbeat; true when this host had been declared dead since its previous one
  /// (never on the first beat: a fresh server holds nothing from before).
  bool beat();
  /// Reaps every dead host; returns the jobs rescheduled or released, -1 if another server is
  /// reaping. After kReaperLockPatience rounds in a row without the reaper lock it reaps without
  /// it: the lock is a session lock, and a holder frozen (SIGSTOP, a stalled VM) mid-round would
  /// otherwise keep every host from reaping, the frozen one included, for as long as it stays
  /// frozen. The lock only saves duplicate work: every write of a round is a compare-and-set.
  int reapDeadHosts();
  static constexpr int kReaperLockPatience = 3;
  /// Enqueues the missing next runs of the periodic jobs; returns how many this call enqueued.
  int schedulePeriodic();
  /// Counts the hosts live on the database into liveHosts() (every second, and with each beat).
  void countLiveHosts();

  /// Hosts live as of the last heartbeat (this one included; 1 before the first).
  int liveHosts() const noexcept { return m_liveHosts.load(std::memory_order_relaxed); }

  /// host_timeout / 4, between 250 ms and 5 s (5 s when host_timeout is 0).
  static std::chrono::milliseconds heartbeatInterval(std::chrono::milliseconds host_timeout);

 private:
  void run(bool beaten);
  void connect();

  HostMonitorOptions m_o;
  std::vector<std::pair<PeriodicJob, CronSchedule>> m_periodic;
  std::vector<std::string> m_singletons;
  std::unique_ptr<store::MaintenanceStore> m_maint;
  std::unique_ptr<Store> m_store;
  bool m_firstBeat = true;
  int m_reaperLockMisses = 0;  ///< rounds in a row another session held the reaper lock
  std::atomic<int> m_liveHosts{1};

  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stop = false;
  std::thread m_thread;
};

}  // namespace hostq::server
