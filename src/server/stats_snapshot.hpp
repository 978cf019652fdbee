#pragma once
// One copy of the server's figures, taken on the loop thread. The socket's StatsRequest renders
// a fresh one; the HTTP side reads the last one the loop published (StatsBoard), so an HTTP
// client never touches the loop's state nor waits for it.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"
#include "hostq/config.hpp"
#include "hostq/job.hpp"
#include "server/stats.hpp"

namespace hostq::server {

struct WorkerSnapshot {
  std::string name;
  int pid = 0;
  Transport transport = Transport::Shm;
  std::string state;  ///< "idle" | "waiting" | "working"
  std::uint64_t jobs = 0;
  std::optional<JobId> current_job;  ///< the latest job handed to it without a result yet
};

struct StatsSnapshot {
  std::int64_t server_pid = 0;
  std::string host;
  std::uint64_t generation = 0;
  std::string http;  ///< the HTTP endpoint's bound HOST:PORT; empty when off
  std::vector<WorkerSnapshot> workers;
  bool idle = false;
  bool drained = false;
  bool database_up = false;
  std::uint64_t prefetched = 0;
  std::uint64_t results_pending = 0;
  std::uint64_t held_channels = 0;  ///< held-lock batch connections
  std::uint64_t held_in_use = 0;    ///< batches open or with a claim or close in flight
  ServerStats stats;
  std::chrono::steady_clock::time_point taken_at{};
};

/// The object `hostq stats --json` prints (keys are a contract: only ever add).
Json statsJson(const StatsSnapshot& s);

/// The last snapshot the loop published; read by any thread.
class StatsBoard {
 public:
  void publish(std::shared_ptr<const StatsSnapshot> s) {
    std::lock_guard lock(m_mutex);
    m_latest = std::move(s);
  }
  /// nullptr until the loop published once.
  std::shared_ptr<const StatsSnapshot> latest() const {
    std::lock_guard lock(m_mutex);
    return m_latest;
  }

 private:
  mutable std::mutex m_mutex;
  std::shared_ptr<const StatsSnapshot> m_latest;
};

}  // namespace hostq::server
