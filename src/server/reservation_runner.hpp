#pragma once
// Runs one reservation at a time on its own thread and connection, so that the loop thread keeps
// handing out prefetched jobs and reading results while PostgreSQL locks the next batch.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "store/store.hpp"
#include "server/one_in_flight.hpp"

namespace hostq::server {

struct ReservationOutcome {
  std::size_t group = 0;
  ReserveRequest request;
  ReserveResult result;
  std::uint64_t busy_ns = 0;
  /// Set when the statement failed; `kind` says whether rows may have been locked (InDoubt /
  /// ConnectionLost: the caller reconciles) or not.
  std::optional<std::string> error;
  DbErrorKind kind = DbErrorKind::GiveUp;
};

class ReservationRunner {
 public:
  using StoreFactory = std::function<std::unique_ptr<Store>()>;
  ReservationRunner(StoreFactory factory, std::function<void()> wake);
  ReservationRunner(const ReservationRunner&) = delete;
  ReservationRunner& operator=(const ReservationRunner&) = delete;

  void submit(std::size_t group, ReserveRequest request);
  bool busy() const noexcept { return m_flight.busy(); }
  std::optional<ReservationOutcome> take() { return m_flight.take(); }
  bool wait(std::chrono::milliseconds timeout) { return m_flight.wait(timeout); }
  void stop() { m_flight.stop(); }

 private:
  ReservationOutcome reserve(ReservationOutcome& o);
  StoreFactory m_factory;
  std::unique_ptr<Store> m_store;  ///< the thread's own connection
  OneInFlight<ReservationOutcome, ReservationOutcome> m_flight;  ///< last: its thread uses the above
};

}  // namespace hostq::server
