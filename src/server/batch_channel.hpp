#pragma once
// One held-lock batch channel: a thread and a connection that hold at most one batch open
// (docs/server.md, "Held-lock batches"). The reserver opens a batch here (BEGIN + claim), hands
// its rows out from memory while the transaction stays open, and closes it here (results,
// promotions, COMMIT). A few channels let one batch close while the next is claimed.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/store.hpp"
#include "server/one_in_flight.hpp"
#include "store/held_claims.hpp"

namespace hostq::server {

struct BatchWork {
  enum class Kind { Open, Close } kind = Kind::Open;
  std::size_t group = 0;
  ReserveRequest request;  ///< Open
  int limit = 0;           ///< Open
  store::HeldClose close;  ///< Close
};

struct BatchOutcome {
  BatchWork::Kind kind = BatchWork::Kind::Open;
  std::size_t group = 0;
  int limit = 0;
  std::vector<Job> jobs;          ///< Open: the claimed rows, (priority, run_at, id) order
  bool ended = false;             ///< Open claimed nothing and was committed at once
  store::HeldCloseResult closed;  ///< Close
  int statements = 0;             ///< round trips that reached the database
  bool reconnected = false;       ///< a new connection replaced one that was lost
  std::uint64_t busy_ns = 0;
  /// Set when the work failed. The batch is gone either way: an Open wrote nothing; a Close
  /// rolled back, or (InDoubt) committed or not.
  std::optional<std::string> error;
  DbErrorKind error_kind = DbErrorKind::GiveUp;
};

class BatchChannel {
 public:
  using StoreFactory = std::function<std::unique_ptr<Store>()>;
  BatchChannel(StoreFactory factory, std::function<void()> wake);
  BatchChannel(const BatchChannel&) = delete;
  BatchChannel& operator=(const BatchChannel&) = delete;

  void submit(BatchWork work) { m_flight.submit(std::move(work)); }
  bool busy() const noexcept { return m_flight.busy(); }
  std::optional<BatchOutcome> take() { return m_flight.take(); }
  bool wait(std::chrono::milliseconds timeout) { return m_flight.wait(timeout); }
  void stop() { m_flight.stop(); }

 private:
  BatchOutcome run(BatchWork& work);
  StoreFactory m_factory;
  std::unique_ptr<Store> m_store;  ///< the thread's own connection
  bool m_connectedBefore = false;
  OneInFlight<BatchWork, BatchOutcome> m_flight;  ///< last: its thread uses the above
};

}  // namespace hostq::server
