#include "server/result_writer.hpp"

#include <spdlog/spdlog.h>

namespace hostq::server {

ResultWriter::ResultWriter(StoreFactory factory, std::function<void()> wake)
    : m_factory(std::move(factory)),
      m_flight([this](WriteBatch& b) { return write(b); }, std::move(wake)) {}

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
    if (!m_flight.pause(backoff)) {
      out.fatal = "stopped before the batch was written";
      return out;
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace hostq::server
