#include "server/result_writer.hpp"

#include <spdlog/spdlog.h>

namespace hostq::server {

ResultWriter::ResultWriter(StoreFactory factory, std::function<void()> wake)
    : m_factory(std::move(factory)), m_wake(std::move(wake)) {
  m_thread = std::thread([this] { run(); });
}

ResultWriter::~ResultWriter() { stop(); }

void ResultWriter::stop() {
  {
    std::lock_guard lock(m_mutex);
    if (m_stop) return;
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void ResultWriter::submit(WriteBatch batch) {
  {
    std::lock_guard lock(m_mutex);
    m_todo = std::move(batch);
  }
  m_busy = true;
  m_cv.notify_all();
}

std::optional<WriteOutcome> ResultWriter::take() {
  if (!m_busy) return std::nullopt;
  std::lock_guard lock(m_mutex);
  if (!m_done) return std::nullopt;
  auto out = std::move(m_done);
  m_done.reset();
  m_busy = false;
  return out;
}

bool ResultWriter::wait(std::chrono::milliseconds timeout) {
  if (!m_busy) return true;
  std::unique_lock lock(m_mutex);
  return m_cv.wait_for(lock, timeout, [&] { return m_done.has_value() || m_stop; }) && m_done.has_value();
}

WriteOutcome ResultWriter::write(WriteBatch& b) {
  WriteOutcome out;
  auto backoff = std::chrono::milliseconds(20);
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      if (!m_store) {
        m_store = m_factory();
        ++out.reconnects;
      }
      const auto before = m_store->statementsExecuted();
      // Each part is one statement; re-running a part after a failure is safe (CAS).
      if (!b.transfers.empty() && out.transfers.applied.empty() && out.transfers.mismatched.empty())
        out.transfers = m_store->transferLocks(b.transfers);
      if (!b.completes.empty() && out.completes.applied.empty() && out.completes.mismatched.empty())
        out.completes = m_store->complete(b.completes);
      if (!b.failures.empty() && out.failures.empty()) out.failures = m_store->fail(b.failures);
      if (!b.unlocks.empty() && out.unlocks.applied.empty() && out.unlocks.mismatched.empty())
        out.unlocks = m_store->unlock(b.unlocks);
      out.statements += m_store->statementsExecuted() - before;
      out.busy_ns += static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
      return out;
    } catch (const DbError& e) {
      ++out.errors;
      if (e.kind() == DbErrorKind::GiveUp) {
        spdlog::error("result writer: {}", e.what());
        out.fatal = e.what();
        return out;
      }
      spdlog::warn("result writer: {}; retrying in {} ms", e.what(), backoff.count());
      if (e.poisonsConnection()) m_store.reset();
    } catch (const std::exception& e) {
      ++out.errors;
      spdlog::warn("result writer: {}; retrying in {} ms", e.what(), backoff.count());
      m_store.reset();
    }
    std::unique_lock lock(m_mutex);
    if (m_cv.wait_for(lock, backoff, [&] { return m_stop; })) {
      out.fatal = "stopped before the batch was written";
      return out;
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

void ResultWriter::run() {
  for (;;) {
    WriteBatch batch;
    {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] { return m_stop || m_todo.has_value(); });
      if (m_stop) return;
      batch = std::move(*m_todo);
      m_todo.reset();
    }
    WriteOutcome out = write(batch);
    {
      std::lock_guard lock(m_mutex);
      m_done = std::move(out);
    }
    m_cv.notify_all();
    m_wake();
  }
}

}  // namespace hostq::server
