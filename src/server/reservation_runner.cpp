#include "server/reservation_runner.hpp"

namespace hostq::server {

ReservationRunner::ReservationRunner(StoreFactory factory, std::function<void()> wake)
    : m_factory(std::move(factory)),
      m_flight([this](ReservationOutcome& o) { return reserve(o); }, std::move(wake)) {}

void ReservationRunner::submit(std::size_t group, ReserveRequest request) {
  ReservationOutcome o;
  o.group = group;
  o.request = std::move(request);
  m_flight.submit(std::move(o));
}

ReservationOutcome ReservationRunner::reserve(ReservationOutcome& o) {
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
  return std::move(o);
}

}  // namespace hostq::server
