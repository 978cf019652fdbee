#pragma once
// The statements of a server's maintenance thread (server/host_monitor.hpp): heartbeats in
// hostq_hosts, finding dead hosts and what they had locked, and the periodic-job audit's query.
// One connection, off the hot path; each call reconnects first if the last one lost it.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "store/store.hpp"
#include "store/pg_connection.hpp"

namespace hostq::store {

struct DeadHost {
  std::string hostname;
  std::int64_t declared_dead_us = 0;  ///< database clock, µs since the epoch
  std::int64_t heartbeat_us = 0;      ///< its last heartbeat
};

struct LockedJob {
  JobId id = 0;
  std::string locked_by;
};

class MaintenanceStore {
 public:
  MaintenanceStore(std::string url, StoreOptions options);

  /// Writes `host`'s heartbeat with its promise to write the next within `timeout` (0 = never
  /// declare it dead). Returns true when another server declared this host dead since its last
  /// heartbeat; the mark is cleared either way.
  bool beat(const std::string& host, int pid, std::chrono::milliseconds timeout);

  /// The farm-wide reaper lock (session-level try-lock): one reaper at a time. Returns false when
  /// another server holds it.
  bool tryLockReaper();
  /// Hosts live as their heartbeats say (this one included once it beat).
  int liveHosts();
  void unlockReaper();

  /// Marks every host other than `self` whose heartbeat is older than its own host_timeout dead,
  /// and returns all hosts declared dead and not reaped yet (including ones a crashed reaper left).
  std::vector<DeadHost> declareDeadHosts(const std::string& self);
  /// Jobs `host` had locked before it was declared dead: `HOST:PID` (its workers) and
  /// `prefetch:HOST` (its server's prefetch).
  std::vector<LockedJob> jobsLockedBy(const DeadHost& host);
  /// Records that `host`'s jobs were handled (unless it came back meanwhile), and forgets hosts
  /// reaped more than a week ago.
  void markReaped(const DeadHost& host);

  /// A server leaving cleanly: its host stops promising heartbeats (host_timeout 0), so nobody
  /// declares it dead later, provided it holds no lock any more. Returns whether it signed off.
  bool signOff(const std::string& host, int pid);

  /// Of these singletons, the ones with no queued (or held) job, and the database clock in µs.
  std::pair<std::vector<std::string>, std::int64_t> missingSingletons(std::span<const std::string> singletons);

 private:
  PgResult run(const Statement& st, std::span<const Param> params, Phase phase);

  PgConnection m_conn;
};

}  // namespace hostq::store
