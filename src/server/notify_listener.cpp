#include "server/notify_listener.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace hostq::server {

NotifyListener::NotifyListener(std::string database_url, StoreOptions options, std::function<void()> wake)
    : m_url(std::move(database_url)), m_options(std::move(options)), m_wake(std::move(wake)) {}

NotifyListener::~NotifyListener() { stop(); }

void NotifyListener::start() { m_thread = std::thread([this] { run(); }); }

void NotifyListener::stop() {
  m_stop.store(true);
  if (m_thread.joinable()) m_thread.join();
}

void NotifyListener::run() {
  std::unique_ptr<Store> conn;
  auto backoff = std::chrono::milliseconds(50);
  while (!m_stop.load()) {
    try {
      if (!conn) {
        conn = Store::connect(m_url, m_options);
        conn->listen();
        backoff = std::chrono::milliseconds(50);
        // Anything enqueued while we were not listening must not wait for the poll.
        m_notified.store(true);
        m_wake();
      }
      // Bounded, so stop() is seen within 200 ms.
      pollfd fd{conn->socket(), POLLIN, 0};
      const int rc = ::poll(&fd, 1, 200);
      if (rc > 0 && conn->drainNotifications() > 0) {
        m_notified.store(true);
        m_wake();
      }
    } catch (const std::exception& e) {
      spdlog::debug("listener: {}", e.what());
      conn.reset();
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
}

}  // namespace hostq::server
