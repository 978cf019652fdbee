#include "server/job_ledger.hpp"

namespace hostq::server {

using Claim = JobLedger::Claim;
using Work = JobLedger::Work;

JobLedger::Entry* JobLedger::get(JobId id) {
  auto it = m_entries.find(id);
  return it == m_entries.end() ? nullptr : &it->second;
}

const JobLedger::Entry* JobLedger::find(JobId id) const {
  auto it = m_entries.find(id);
  return it == m_entries.end() ? nullptr : &it->second;
}

bool JobLedger::insert(JobId id, Entry e) { return m_entries.emplace(id, std::move(e)).second; }

namespace {
JobLedger::Entry handedTo(ClientId client, bool stranded, JobLedger::Clock::time_point now) {
  JobLedger::Entry e;
  e.client = client;
  e.stranded = stranded;
  e.handed_at = now;
  return e;
}
}  // namespace

bool JobLedger::handOutFromBatch(JobId id, ClientId client, int batch, bool stranded,
                                 Clock::time_point now) {
  Entry e = handedTo(client, stranded, now);
  e.claim = Claim::Batch;
  e.batch = batch;
  return insert(id, std::move(e));
}

bool JobLedger::handOutPrefetched(JobId id, ClientId client, const std::string& prefetch_owner,
                                  const std::string& worker, bool stranded, Clock::time_point now) {
  Entry e = handedTo(client, stranded, now);
  e.claim = Claim::Transfer;
  e.owner = prefetch_owner;
  e.transfer_to = worker;
  return insert(id, std::move(e));
}

bool JobLedger::handOutAssigned(JobId id, ClientId client, const std::string& worker, bool stranded,
                                Clock::time_point now) {
  Entry e = handedTo(client, stranded, now);
  e.claim = Claim::Written;
  e.owner = worker;
  return insert(id, std::move(e));
}

bool JobLedger::adopt(JobId id, ClientId client, const std::string& worker, Work work) {
  Entry e = handedTo(client, false, Clock::now());
  e.claim = Claim::Transfer;
  e.work = work;
  // The result's write waits for the transfer's outcome; until then the worker is the best
  // guess (and the answer whenever the transfer finds the row already the worker's).
  e.owner = worker;
  e.transfer_to = worker;
  e.uncertain = true;
  return insert(id, std::move(e));
}

bool JobLedger::report(JobId id) {
  Entry* e = get(id);
  if (e == nullptr || e->work == Work::Reported) return false;
  e->work = Work::Reported;
  return true;
}

std::optional<JobLedger::Release> JobLedger::undeliver(JobId id, std::string& owner) {
  Entry* e = get(id);
  if (e == nullptr || e->work != Work::Running) return std::nullopt;
  owner = e->owner;
  switch (e->claim) {
    case Claim::Batch:  // its batch's COMMIT gives the row back
      m_entries.erase(id);
      return Release::Forget;
    case Claim::Promoting:
    case Claim::Transferring:  // the write in flight decides whose lock to undo
      e->work = Work::Undelivered;
      e->client = kNoClient;
      return Release::UnlockLater;
    case Claim::Written:
    case Claim::Transfer:  // the queued transfer is dropped with the entry
      m_entries.erase(id);
      return Release::UnlockNow;
  }
  return std::nullopt;
}

bool JobLedger::transferSubmitted(JobId id) {
  Entry* e = get(id);
  if (e == nullptr || e->claim != Claim::Transfer) return false;
  e->claim = Claim::Transferring;
  return true;
}

bool JobLedger::transferDone(JobId id, bool applied) {
  Entry* e = get(id);
  if (e == nullptr || e->claim != Claim::Transferring) return false;
  e->claim = Claim::Written;
  // Applied: the worker's lock. Not applied but uncertain: the row was already the worker's
  // (the old server wrote the transfer, or the in-doubt COMMIT promoted it) or is gone, which
  // the result's compare-and-set reports. Otherwise the lock was lost under us (a purge, an
  // operator): the owner stays what we believed, and the result will mismatch.
  if (applied || e->uncertain) e->owner = e->transfer_to;
  e->uncertain = false;
  e->transfer_to.clear();
  return true;
}

bool JobLedger::fold(JobId id) {
  Entry* e = get(id);
  if (e == nullptr || e->claim != Claim::Transfer || e->uncertain) return false;
  e->claim = Claim::Written;
  e->transfer_to.clear();
  return true;
}

bool JobLedger::promoteSubmitted(JobId id, const std::string& worker) {
  Entry* e = get(id);
  if (e == nullptr || e->claim != Claim::Batch || e->work != Work::Running) return false;
  e->claim = Claim::Promoting;
  e->transfer_to = worker;
  return true;
}

bool JobLedger::promotionDone(JobId id, bool committed) {
  Entry* e = get(id);
  if (e == nullptr || e->claim != Claim::Promoting) return false;
  e->batch = -1;
  if (committed) {
    e->claim = Claim::Written;
    e->owner = e->transfer_to;
    e->transfer_to.clear();
  } else {
    // Written again by a transfer from unlocked. Uncertain: a mismatch means the in-doubt COMMIT
    // did promote it, and the owner is the worker either way.
    e->claim = Claim::Transfer;
    e->owner = e->transfer_to;
    e->uncertain = true;
  }
  return true;
}

bool JobLedger::batchLost(JobId id) {
  Entry* e = get(id);
  if (e == nullptr || e->claim != Claim::Batch) return false;
  e->claim = Claim::Written;
  e->batch = -1;
  e->owner.clear();
  return true;
}

std::optional<std::string> JobLedger::writableOwner(JobId id) const {
  const Entry* e = find(id);
  if (e == nullptr) return std::nullopt;
  switch (e->claim) {
    case Claim::Promoting:
    case Claim::Transferring:
      return std::nullopt;
    case Claim::Transfer:
      if (e->uncertain) return std::nullopt;
      return e->owner;
    case Claim::Batch:
    case Claim::Written:
      return e->owner;
  }
  return std::nullopt;
}

void JobLedger::orphan(ClientId client) {
  for (auto& [id, e] : m_entries)
    if (e.client == client) e.client = kNoClient;
}

const char* toString(Claim c) noexcept {
  switch (c) {
    case Claim::Batch: return "batch";
    case Claim::Promoting: return "promoting";
    case Claim::Written: return "written";
    case Claim::Transfer: return "transfer";
    case Claim::Transferring: return "transferring";
  }
  return "?";
}

const char* toString(Work w) noexcept {
  switch (w) {
    case Work::Running: return "running";
    case Work::Reported: return "reported";
    case Work::Undelivered: return "undelivered";
  }
  return "?";
}

}  // namespace hostq::server
