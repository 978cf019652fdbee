#pragma once
// The job ledger: every job the server has handed out or holds a result for, as two small state
// machines (docs/server.md, "The job state machine"):
//
//   claim  where the row's claim lives in the database, i.e. what a write must expect
//   work   how far the job has got on the worker's side
//
// Each change of state is a method that checks where it comes from; a call from the wrong state
// is refused (false), never applied half-way. The reserver decides what to write and when; the
// ledger only keeps the books, so it is tested without a database (tests/unit/test_job_ledger).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "hostq/job.hpp"

namespace hostq::server {

using ClientId = std::uint32_t;
inline constexpr ClientId kNoClient = ~ClientId{0};

class JobLedger {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Claim : std::uint8_t {
    Batch,         ///< the row lock of an open held-lock batch; the row reads unlocked
    Promoting,     ///< that batch's close, in flight, writes the worker's lock
    Written,       ///< locked_by = owner ("" = unlocked: a lost batch's row)
    Transfer,      ///< locked_by = owner; a transfer to `transfer_to` is queued
    Transferring,  ///< that transfer is in the result writer's batch
  };
  enum class Work : std::uint8_t {
    Running,      ///< handed out, no result yet
    Reported,     ///< a result (or "process died") waits to be written
    Undelivered,  ///< never reached its worker: unlocked once its owner is known
  };

  struct Entry {
    ClientId client = kNoClient;
    Claim claim = Claim::Written;
    Work work = Work::Running;
    int batch = -1;           ///< Batch, Promoting: the held-lock batch (its channel)
    std::string owner;        ///< locked_by as the database has it now
    std::string transfer_to;  ///< Transfer, Transferring, Promoting: the worker's name
    /// Adopted after a restart: the row is locked by the prefetch owner, by nobody, or already
    /// by the worker; only the transfer's outcome tells, and the result waits for it.
    bool uncertain = false;
    bool stranded = false;  ///< finishing it may make another job runnable (strand, singleton)
    Clock::time_point handed_at{};
  };

  // --- entering the ledger ----------------------------------------------------------------------
  /// Handed out from a held-lock batch: claimed by the batch's row lock.
  bool handOutFromBatch(JobId id, ClientId client, int batch, bool stranded, Clock::time_point now);
  /// Handed out from the written-lock prefetch: locked by `prefetch_owner`, a transfer to
  /// `worker` queued (folded away if the result comes first).
  bool handOutPrefetched(JobId id, ClientId client, const std::string& prefetch_owner,
                         const std::string& worker, bool stranded, Clock::time_point now);
  /// Handed out by name in a written-lock claim: already locked by `worker`.
  bool handOutAssigned(JobId id, ClientId client, const std::string& worker, bool stranded,
                       Clock::time_point now);
  /// A job a worker reports (running, or with a result) that this server never handed out: after
  /// a restart. Uncertain, with a transfer to `worker` queued.
  bool adopt(JobId id, ClientId client, const std::string& worker, Work work);

  // --- work -------------------------------------------------------------------------------------
  /// Running (or Undelivered: it did reach its worker after all) → Reported, for a result or
  /// "process died". false = already reported (a duplicate), or not in the ledger.
  bool report(JobId id);
  /// What an undelivered job needs: nothing (its batch's COMMIT gives the row back), an unlock
  /// under `owner` now, or an unlock once the write in flight tells the owner.
  enum class Release { Forget, UnlockNow, UnlockLater };
  /// Running → Undelivered (or out of the ledger). `owner` receives the lock to undo.
  std::optional<Release> undeliver(JobId id, std::string& owner);

  // --- claim ------------------------------------------------------------------------------------
  /// Transfer → Transferring: its transfer goes into the writer's batch.
  bool transferSubmitted(JobId id);
  /// Transferring → Written. `applied`: the row is the worker's now; else it was not locked as
  /// expected (an uncertain adoption keeps the worker as owner: the old server had transferred
  /// it). An Undelivered entry then needs its unlock: the caller reads it with find().
  bool transferDone(JobId id, bool applied);
  /// Transfer → Written under the current owner: the result is written first and the queued
  /// transfer is dropped (saves a statement). Not for an uncertain entry.
  bool fold(JobId id);
  /// Batch → Promoting: the batch's close writes `worker`'s lock.
  bool promoteSubmitted(JobId id, const std::string& worker);
  /// Promoting → Written (the close committed) or → Transfer from unlocked, uncertain (the close
  /// was lost; an in-doubt COMMIT may have promoted it after all).
  bool promotionDone(JobId id, bool committed);
  /// Batch → Written unlocked: the batch's transaction died; a result is written against the
  /// free row.
  bool batchLost(JobId id);

  // --- queries ----------------------------------------------------------------------------------
  const Entry* find(JobId id) const;
  bool holds(JobId id) const { return m_entries.count(id) != 0; }
  std::size_t size() const noexcept { return m_entries.size(); }
  /// The owner a result must be written under, when it can be written now: not while a
  /// transfer or a promotion is in flight, nor while an adoption's transfer is still queued
  /// (nullopt), nor for a job that is not in the ledger (nullopt: the caller knows better).
  std::optional<std::string> writableOwner(JobId id) const;
  /// The result is written (or the job given up): out of the ledger.
  void forget(JobId id) { m_entries.erase(id); }
  /// The job's worker left: its acks and entries go nowhere from now on.
  void orphan(ClientId client);
  template <class F>
  void forEach(F&& f) const {
    for (const auto& [id, e] : m_entries) f(id, e);
  }

 private:
  Entry* get(JobId id);
  bool insert(JobId id, Entry e);
  std::unordered_map<JobId, Entry> m_entries;
};

const char* toString(JobLedger::Claim c) noexcept;
const char* toString(JobLedger::Work w) noexcept;

}  // namespace hostq::server
