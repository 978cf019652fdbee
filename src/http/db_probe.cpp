#include "http/db_probe.hpp"

#include <spdlog/spdlog.h>

#include "hostq/config.hpp"
#include "hostq/error.hpp"

namespace hostq::http {

DbProbe::DbProbe(Options options) : m_o(std::move(options)) {}

DbProbe::~DbProbe() { stop(); }

void DbProbe::start() {
  if (m_thread.joinable()) return;
  m_thread = std::thread([this] { run(); });
}

void DbProbe::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

DbProbe::State DbProbe::state() const {
  std::lock_guard lock(m_mutex);
  return m_state;
}

void DbProbe::round(std::unique_ptr<Store>& store, std::chrono::steady_clock::time_point& next_counts) {
  try {
    if (!store) {
      StoreOptions so;
      so.schema = m_o.schema;
      so.application_name = "hostq server http";
      // The health check wants the truth now, not after a backoff.
      so.reconnect_attempts = 0;
      store = Store::connect(resolveDatabaseUrl(m_o.database_url), so);
    }
    store->ping();
    {
      std::lock_guard lock(m_mutex);
      if (m_state.checked && !m_state.reachable) spdlog::info("http: database reachable again");
      m_state.checked = true;
      m_state.reachable = true;
      m_state.error.clear();
      m_state.last_ok = std::chrono::steady_clock::now();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_counts) {
      auto counts = store->counts();
      next_counts = std::chrono::steady_clock::now() + m_o.counts_interval;
      std::lock_guard lock(m_mutex);
      m_state.counts = std::move(counts);
      m_state.have_counts = true;
      m_state.counts_at = std::chrono::steady_clock::now();
    }
  } catch (const std::exception& e) {
    // Whatever failed, the next round starts from a new connection.
    store.reset();
    std::lock_guard lock(m_mutex);
    if (!m_state.checked || m_state.reachable) spdlog::warn("http: database unreachable: {}", e.what());
    m_state.checked = true;
    m_state.reachable = false;
    m_state.error = e.what();
    while (!m_state.error.empty() && (m_state.error.back() == '\n' || m_state.error.back() == ' '))
      m_state.error.pop_back();
  }
}

void DbProbe::run() {
  std::unique_ptr<Store> store;
  auto next_counts = std::chrono::steady_clock::now();
  for (;;) {
    round(store, next_counts);
    std::unique_lock lock(m_mutex);
    if (m_wake.wait_for(lock, m_o.ping_interval, [&] { return m_stop; })) return;
  }
}

}  // namespace hostq::http
