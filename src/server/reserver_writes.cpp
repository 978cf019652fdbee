// The reserver's side of the result writer: what goes into the next write batch (results whose
// owner is known, lock transfers old enough, unlocks) and what its outcome means for each job.
#include <spdlog/spdlog.h>

#include <map>
#include <unordered_map>

#include "server/reserver.hpp"

namespace hostq::server {

namespace {
using Claim = JobLedger::Claim;
using Work = JobLedger::Work;
}  // namespace

void Reserver::queueAdoption(JobId job, const std::string& worker) {
  // The row is locked by our prefetch owner (the old server never wrote the transfer), or it is
  // unlocked: a held-lock batch's claim died with the old server, or the start-up release freed
  // it. Either way nobody else holds it, so it becomes the worker's; one CAS row of each
  // matches at most. A row locked by anyone else is not taken (the result then mismatches).
  m_pendingTransfers.push_back(LockTransfer{job, m_prefetchOwner, worker});
  m_pendingTransfers.push_back(LockTransfer{job, std::string(), worker});
  if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
}

void Reserver::queueUnlock(JobId id, const std::string& owner) {
  m_pendingUnlock.push_back(OwnedJob{id, owner});
  if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
}

bool Reserver::submitWrites(SteadyClock::time_point now, bool all_transfers) {
  if (m_writer.busy()) return false;
  WriteBatch batch;
  // Fold: a job whose result arrived before its lock transfer was written is completed under
  // the prefetch owner's name, saving the transfer statement. An adopted job (after a restart)
  // waits for its transfer, because its owner is uncertain until then.
  auto ready = [&](PendingResult& p) -> bool {
    if (!m_ledger.holds(p.result.id)) return true;
    m_ledger.fold(p.result.id);  // a queued (certain) transfer is not needed any more
    // Waits while the owner is unknown: a transfer or promotion in flight, an adoption's
    // transfer still queued.
    const auto owner = m_ledger.writableOwner(p.result.id);
    if (!owner) return false;
    p.db_owner = *owner;
    return true;
  };
  auto split = [&](std::vector<PendingResult>& pending, std::vector<PendingResult>& out) {
    std::vector<PendingResult> later;
    for (auto& p : pending) (ready(p) ? out : later).push_back(std::move(p));
    pending = std::move(later);
  };
  split(m_pendingComplete, m_inflight.completes);
  split(m_pendingFail, m_inflight.fails);
  for (auto& p : m_inflight.completes) batch.completes.push_back(OwnedJob{p.result.id, p.db_owner});
  for (auto& p : m_inflight.fails) {
    batch.failures.push_back(Failure::of(p.result, p.db_owner));
  }
  std::vector<LockTransfer> later;
  const auto young = std::min(m_prevFlush, now - m_settings.flush_delay);
  for (auto& t : m_pendingTransfers) {
    const auto* e = m_ledger.find(t.id);
    if (e == nullptr || e->claim != Claim::Transfer) continue;  // folded into a result, or gone
    if (!all_transfers && !e->uncertain && e->handed_at > young) {
      later.push_back(t);
      continue;
    }
    batch.transfers.push_back(t);
  }
  m_pendingTransfers = std::move(later);
  for (auto& t : batch.transfers) m_ledger.transferSubmitted(t.id);  // an adoption's pair: once
  m_inflight.transfers = batch.transfers;
  batch.unlocks = std::move(m_pendingUnlock);
  m_pendingUnlock.clear();
  m_inflight.unlocks = batch.unlocks;
  // A flush cycle passes even when it writes nothing: otherwise a job that holds only a pending
  // transfer never becomes "old enough" and its lock stays with the prefetch owner for good.
  m_prevFlush = m_lastFlush;
  m_lastFlush = now;
  if (batch.empty()) return false;
  m_writer.submit(std::move(batch));
  return true;
}

bool Reserver::collectWrites() {
  auto out = m_writer.take();
  if (!out) return false;
  applyWrites(*out);
  return true;
}

void Reserver::finishTransfer(JobId id, bool applied) {
  const auto* e = m_ledger.find(id);
  if (e == nullptr || e->claim != Claim::Transferring) return;  // an adoption's second CAS row
  // Neither applied nor adopted: our prefetch lock was lost between hand-out and transfer (a
  // purge, an operator). The worker runs the job anyway; its result will not match.
  const bool lost = !applied && !e->uncertain && e->work != Work::Undelivered;
  m_ledger.transferDone(id, applied);
  e = m_ledger.find(id);
  if (e->work == Work::Undelivered) {
    // Never reached its worker: give it back, if it is ours (applied) at all.
    if (applied) queueUnlock(id, e->owner);
    m_ledger.forget(id);
    return;
  }
  if (lost) {
    ++m_stats.transfer_mismatches;
    spdlog::warn("job {}: prefetch lock lost before transfer", id);
  }
}

bool Reserver::settle(const std::vector<PendingResult>& completes, const BatchResult& completed,
                      const std::vector<PendingResult>& fails, const std::vector<FailResult>& failed,
                      std::map<ClientId, Acks>& acks) {
  bool may_unblock = false;
  m_stats.jobs_completed += completed.applied.size();
  m_stats.result_mismatches += completed.mismatched.size();
  for (auto& p : completes) {
    if (const auto* e = m_ledger.find(p.result.id)) may_unblock |= e->stranded;
    m_ledger.forget(p.result.id);
    if (p.client != kNoClient) acks[p.client].jobs.push_back(p.result.id);
  }
  std::unordered_map<JobId, const FailResult*> decided;
  for (auto& fr : failed) {
    decided.emplace(fr.id, &fr);
    if (fr.outcome == FailOutcome::Mismatch)
      ++m_stats.result_mismatches;
    else
      ++m_stats.jobs_failed;
  }
  for (auto& p : fails) {
    m_ledger.forget(p.result.id);
    if (p.client != kNoClient) {
      acks[p.client].jobs.push_back(p.result.id);
      auto it = decided.find(p.result.id);
      acks[p.client].failures.push_back(it != decided.end() ? *it->second : FailResult{p.result.id});
    }
    may_unblock = true;  // a reschedule or a move to failed_jobs can release a strand
  }
  return may_unblock;
}

void Reserver::applyWrites(WriteOutcome& out) {
  m_stats.db_busy_ns += out.busy_ns;
  m_stats.db_errors += out.errors;
  if (out.fatal) {
    // The database refuses the batch for good (a bug or a schema problem). Nothing acked is
    // lost: the workers still hold these results and resend them to the next server.
    throw std::runtime_error("result batch could not be written: " + *out.fatal);
  }
  auto& in = m_inflight;
  if (!in.transfers.empty()) {
    ++m_stats.statements.transfer;
    // The row now carries the transfer's target even if that worker has gone meanwhile: a
    // result or "process died" queued under the old owner is written under the new one.
    for (JobId id : out.transfers.applied) finishTransfer(id, true);
    for (JobId id : out.transfers.mismatched) finishTransfer(id, false);
  }
  std::map<ClientId, Acks> acks;
  if (!in.completes.empty()) ++m_stats.statements.complete;
  if (!in.fails.empty()) ++m_stats.statements.fail;
  bool may_unblock = settle(in.completes, out.completes, in.fails, out.failures, acks);
  if (!in.unlocks.empty()) {
    ++m_stats.statements.unlock;
    m_stats.jobs_unlocked += out.unlocks.applied.size();
    may_unblock = true;
  }
  for (auto& [c, a] : acks) m_sink.acknowledge(c, a.jobs, a.failures);
  in = InFlight{};
  if (may_unblock) jobsMayExist();
}

}  // namespace hostq::server
