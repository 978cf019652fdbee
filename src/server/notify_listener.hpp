#pragma once
// LISTEN on the jobs channel, on a thread of its own with its own connection: a NOTIFY (a job
// enqueued) or a reconnect (anything enqueued while not listening) sets a flag and wakes the
// loop, which then lets groups that found nothing ask again.
#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "store/store.hpp"

namespace hostq::server {

class NotifyListener {
 public:
  /// `wake` is called from the listener's thread.
  NotifyListener(std::string database_url, StoreOptions options, std::function<void()> wake);
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  void start();
  void stop();
  /// Whether jobs may have arrived since the last call.
  bool takeNotified() noexcept { return m_notified.exchange(false); }

 private:
  void run();

  const std::string m_url;
  const StoreOptions m_options;
  const std::function<void()> m_wake;
  std::atomic<bool> m_notified{false};
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
};

}  // namespace hostq::server
