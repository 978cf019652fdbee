#pragma once
// Held-lock batches: a claim that is the row lock of an open transaction, and writes nothing
// (docs/store.md, "Held-lock batches"). The server's batch channels use this side of a Store;
// nothing else should.
#include <vector>

#include "store/store.hpp"

namespace hostq::store {

/// What closes a batch, written in its transaction before COMMIT.
struct HeldClose {
  std::vector<JobId> completes;          ///< deleted (the AFTER DELETE trigger advances strands)
  std::vector<Failure> failures;         ///< rescheduled or moved to failed_jobs; `locked_by` unused
  std::vector<LockTransfer> promotions;  ///< still running: the lock is written (`from` unused)
  bool empty() const noexcept { return completes.empty() && failures.empty() && promotions.empty(); }
};

struct HeldCloseResult {
  BatchResult completes;
  std::vector<FailResult> failures;
  BatchResult promotions;
  int statements = 0;  ///< round trips, COMMIT included
};

/// One connection that holds at most one batch open. Not thread-safe, like Store.
class HeldClaims {
 public:
  virtual ~HeldClaims() = default;
  /// BEGIN, then lock up to `limit` runnable non-singleton rows of the request's queue and
  /// priority range (FOR UPDATE SKIP LOCKED). On any error the transaction is abandoned and the
  /// DbError rethrown: nothing was written, so there is nothing to reconcile.
  virtual std::vector<Job> openBatch(const ReserveRequest& request, int limit) = 0;
  /// Writes `close` and COMMITs. On error the batch is abandoned and the DbError rethrown:
  /// rolled back, or with InDoubt, committed or not.
  virtual HeldCloseResult closeBatch(const HeldClose& close) = 0;
  virtual bool batchOpen() const noexcept = 0;
};

/// The held-claim side of a store made by Store::connect.
HeldClaims& heldClaims(Store& store);

}  // namespace hostq::store
