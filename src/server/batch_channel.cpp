#include "server/batch_channel.hpp"

namespace hostq::server {

BatchChannel::BatchChannel(StoreFactory factory, std::function<void()> wake)
    : m_factory(std::move(factory)),
      m_flight([this](BatchWork& w) { return run(w); }, std::move(wake)) {}

BatchOutcome BatchChannel::run(BatchWork& work) {
  const auto t0 = std::chrono::steady_clock::now();
  BatchOutcome o;
  o.kind = work.kind;
  o.group = work.group;
  o.limit = work.limit;
  try {
    if (!m_store) {
      m_store = m_factory();
      o.reconnected = m_connectedBefore;
      m_connectedBefore = true;
    }
    auto& held = store::heldClaims(*m_store);
    if (work.kind == BatchWork::Kind::Open) {
      o.jobs = held.openBatch(work.request, work.limit);
      o.statements = 2;  // BEGIN, claim
      if (o.jobs.empty()) {
        // Nothing claimed: end the transaction here rather than a loop turn later, so that an
        // idle host's periodic claim holds nothing open (and is not "in use") for longer than
        // its round trips.
        o.closed = held.closeBatch(store::HeldClose{});
        o.statements += o.closed.statements;
        o.ended = true;
      }
    } else {
      o.closed = held.closeBatch(work.close);
      o.statements = o.closed.statements;
    }
  } catch (const DbError& e) {
    o.error = e.what();
    o.error_kind = e.kind();
    if (e.poisonsConnection()) m_store.reset();
  } catch (const std::exception& e) {
    o.error = e.what();
    o.error_kind = DbErrorKind::ConnectionLost;
    m_store.reset();
  }
  o.busy_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  return o;
}

}  // namespace hostq::server
