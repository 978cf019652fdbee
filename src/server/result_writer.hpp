#pragma once
// The result writer: a thread with its own connection that writes the reserver's batches of lock
// transfers, completions, failures and unlocks, so that the loop thread keeps handing out jobs
// while PostgreSQL commits. One batch in flight at a time; whatever arrives meanwhile forms the
// next batch, so the batch size follows the database's latency (group commit).
//
// Every write is a compare-and-set on locked_by, so a batch whose outcome is unknown (the
// connection died around COMMIT) is simply run again after reconnecting: rows already written no
// longer match and are reported as mismatched. The writer therefore retries connection and
// transient errors by itself, with back-off, until it succeeds or is stopped.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/store.hpp"
#include "server/one_in_flight.hpp"

namespace hostq::server {

struct WriteBatch {
  std::vector<LockTransfer> transfers;  ///< written first: adopted jobs' results rely on it
  std::vector<OwnedJob> completes;
  std::vector<Failure> failures;
  std::vector<OwnedJob> unlocks;
  bool empty() const noexcept {
    return transfers.empty() && completes.empty() && failures.empty() && unlocks.empty();
  }
};

struct WriteOutcome {
  BatchResult transfers;
  BatchResult completes;
  std::vector<FailResult> failures;
  BatchResult unlocks;
  std::uint64_t statements = 0;
  std::uint64_t busy_ns = 0;
  std::uint64_t errors = 0;  ///< failed attempts before success
  std::uint64_t reconnects = 0;
  /// Set when the batch could not be written and never will be (a GiveUp error): the reserver
  /// logs it and lets the rows be recovered by the usual paths.
  std::optional<std::string> fatal;
};

class ResultWriter {
 public:
  using StoreFactory = std::function<std::unique_ptr<Store>()>;
  /// `wake` is called (from the writer thread) when an outcome is ready.
  ResultWriter(StoreFactory factory, std::function<void()> wake);
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  /// Hands a batch over. Only while !busy().
  void submit(WriteBatch batch) { m_flight.submit(std::move(batch)); }
  /// A batch is in flight (submitted, outcome not yet taken).
  bool busy() const noexcept { return m_flight.busy(); }
  /// The outcome of the batch in flight, if it is done. Loop thread only.
  std::optional<WriteOutcome> take() { return m_flight.take(); }
  /// Blocks until the batch in flight is done (shutdown path); false on timeout.
  bool wait(std::chrono::milliseconds timeout) { return m_flight.wait(timeout); }
  /// Stops retrying and joins the thread; a batch still in flight is abandoned.
  void stop() { m_flight.stop(); }

 private:
  WriteOutcome write(WriteBatch& batch);

  StoreFactory m_factory;
  std::unique_ptr<Store> m_store;  ///< the thread's own connection
  OneInFlight<WriteBatch, WriteOutcome> m_flight;  ///< last: its thread uses the above
};

}  // namespace hostq::server
