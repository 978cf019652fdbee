#pragma once
// The HTTP side's own view of the database, on its own thread and connection so that neither a
// scrape nor a dead PostgreSQL ever reaches the server's loop: a `SELECT 1` every ping interval
// (the health check's "database reachable") and the job counts per queue and state every counts
// interval (`hostq_jobs`; a full scan of delayed_jobs, hence a bounded schedule and never per
// scrape).
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.hpp"

namespace hostq::http {

class DbProbe {
 public:
  struct Options {
    std::string database_url;
    std::string schema;
    std::chrono::milliseconds ping_interval{1000};
    std::chrono::milliseconds counts_interval{5000};
  };
  struct State {
    bool checked = false;    ///< at least one ping finished either way
    bool reachable = false;  ///< the last ping succeeded
    std::string error;       ///< why the last ping failed
    /// When a ping last succeeded: a ping that hangs (a network partition, no TCP reset) leaves
    /// `reachable` as it was, so the health check also looks at this.
    std::chrono::steady_clock::time_point last_ok{};
    bool have_counts = false;
    std::vector<QueueCount> counts;
    std::chrono::steady_clock::time_point counts_at{};
  };

  explicit DbProbe(Options options);
  ~DbProbe();  ///< stop()
  DbProbe(const DbProbe&) = delete;
  DbProbe& operator=(const DbProbe&) = delete;

  void start();
  /// Wakes the thread and joins it (a connect in progress finishes first).
  void stop();
  State state() const;

 private:
  void run();
  void round(std::unique_ptr<Store>& store, std::chrono::steady_clock::time_point& next_counts);

  Options m_o;
  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_stop = false;
  State m_state;
  std::thread m_thread;
};

}  // namespace hostq::http
