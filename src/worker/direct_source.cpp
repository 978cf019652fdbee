#include "worker/direct_source.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <thread>

namespace hostq::worker {

DirectSource::DirectSource(std::string url, StoreOptions options, std::string name,
                           WorkerConfig config, int interrupt_fd)
    : m_url(std::move(url)),
      m_options(std::move(options)),
      m_name(std::move(name)),
      m_config(std::move(config)),
      m_interruptFd(interrupt_fd) {}

bool DirectSource::waitForWork() {
  pollfd fds[2] = {{m_interruptFd, POLLIN, 0}, {m_store ? m_store->socket() : -1, POLLIN, 0}};
  // A poll bound as a safety net (and for future run_at), as River's FetchPollInterval.
  const int rc = ::poll(fds, 2, 1000);
  if (rc > 0 && (fds[0].revents & POLLIN)) return false;
  if (m_store) m_store->drainNotifications();
  return true;
}

NextStatus DirectSource::next(Job& out) {
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    try {
      if (!m_store) {
        m_store = Store::connect(m_url, m_options);
        m_store->listen();
      }
      ReserveRequest req;
      req.worker_names = {m_name};
      req.queue = m_config.queue;
      req.min_priority = m_config.min_priority;
      req.max_priority = m_config.max_priority;
      auto r = m_store->reserve(req);
      if (!r.assigned.empty()) {
        out = std::move(r.assigned.front().second);
        return NextStatus::Job;
      }
      if (!waitForWork()) return NextStatus::Interrupted;
      backoff = std::chrono::milliseconds(50);
    } catch (const DbError& e) {
      if (e.kind() == DbErrorKind::GiveUp) throw;
      spdlog::warn("database: {}; reconnecting in {} ms", e.what(), backoff.count());
      m_store.reset();
      pollfd fd{m_interruptFd, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(backoff.count())) > 0) return NextStatus::Interrupted;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
}

void DirectSource::report(const JobResult& r) {
  for (int attempt = 0;; ++attempt) {
    try {
      if (!m_store) m_store = Store::connect(m_url, m_options);
      if (r.success) {
        OwnedJob j{r.id, m_name};
        m_store->complete(std::span<const OwnedJob>(&j, 1));
      } else {
        // The same statement as the server's writer: its answer is the decision.
        const Failure f = Failure::of(r, m_name);
        for (const auto& decision : m_store->fail(std::span<const Failure>(&f, 1))) decided(decision);
      }
      return;
    } catch (const DbError& e) {
      // Both writes are compare-and-set on locked_by, so re-running one whose first outcome is
      // unknown is harmless: the second finds nothing to do.
      if (e.kind() == DbErrorKind::GiveUp || attempt >= 20) throw;
      spdlog::warn("reporting job {}: {}; retrying", r.id, e.what());
      m_store.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(100) * std::min(attempt + 1, 10));
    }
  }
}

bool DirectSource::abortRunning(JobId job, const std::string& error) noexcept {
  // A job already reported is not ours any more: the compare-and-set on locked_by finds nothing.
  try {
    // Not the main thread's connection: that one may be mid-statement.
    auto store = Store::connect(m_url, m_options);
    const Failure f = Failure::of(JobResult::failed(job, error), m_name);
    store->fail(std::span<const Failure>(&f, 1));
  } catch (const std::exception& e) {
    spdlog::error("could not reschedule aborted job {}: {}", job, e.what());
  }
  return true;
}

void DirectSource::close() {
  if (!m_store) return;
  try {
    m_store->clearLocks(m_name);
  } catch (const std::exception& e) {
    spdlog::warn("clearing locks on exit: {}", e.what());
  }
  m_store.reset();
}

}  // namespace hostq::worker
