#include "server/reservation_runner.hpp"

#include <spdlog/spdlog.h>

namespace hostq::server {

ReservationRunner::ReservationRunner(StoreFactory factory, std::function<void()> wake)
    : m_factory(std::move(factory)), m_wake(std::move(wake)) {
  m_thread = std::thread([this] { run(); });
}

ReservationRunner::~ReservationRunner() { stop(); }

void ReservationRunner::stop() {
  {
    std::lock_guard lock(m_mutex);
    if (m_stop) return;
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void ReservationRunner::submit(std::size_t group, ReserveRequest request) {
  {
    std::lock_guard lock(m_mutex);
    ReservationOutcome o;
    o.group = group;
    o.request = std::move(request);
    m_todo = std::move(o);
  }
  m_busy = true;
  m_cv.notify_all();
}

std::optional<ReservationOutcome> ReservationRunner::take() {
  if (!m_busy) return std::nullopt;
  std::lock_guard lock(m_mutex);
  if (!m_done) return std::nullopt;
  auto out = std::move(m_done);
  m_done.reset();
  m_busy = false;
  return out;
}

bool ReservationRunner::wait(std::chrono::milliseconds timeout) {
  if (!m_busy) return true;
  std::unique_lock lock(m_mutex);
  return m_cv.wait_for(lock, timeout, [&] { return m_done.has_value() || m_stop; }) && m_done.has_value();
}

void ReservationRunner::run() {
  for (;;) {
    ReservationOutcome o;
    {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] { return m_stop || m_todo.has_value(); });
      if (m_stop) return;
      o = std::move(*m_todo);
      m_todo.reset();
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      if (!m_store) m_store = m_factory();
      o.result = m_store->reserve(o.request);
    } catch (const DbError& e) {
      o.error = e.what();
      o.kind = e.kind();
      // Not retried here: a reservation that may have committed needs reconciling first.
      if (e.poisonsConnection()) m_store.reset();
    } catch (const std::exception& e) {
      o.error = e.what();
      o.kind = DbErrorKind::ConnectionLost;
      m_store.reset();
    }
    o.busy_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    {
      std::lock_guard lock(m_mutex);
      m_done = std::move(o);
    }
    m_cv.notify_all();
    m_wake();
  }
}

}  // namespace hostq::server
