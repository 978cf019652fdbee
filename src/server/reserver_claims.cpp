// The reserver's claims: per-group scheduling (hand-outs from the prefetch, when and how much to
// claim), the written-lock reservation, and the held-lock batches' life (claim, close,
// promotion, loss). docs/server.md, "Batching" and "Held-lock batches".
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "server/reserver.hpp"

namespace hostq::server {

namespace {
using Claim = JobLedger::Claim;
using Work = JobLedger::Work;
/// Held-lock claims in a row that start past the open batches before one starts from the head.
constexpr int kBoundedClaims = 4;
}  // namespace

Reserver::Prefetched Reserver::takePrefetched(Group& g) {
  Prefetched p = std::move(g.prefetched.front());
  g.prefetched.pop_front();
  if (p.batch >= 0) {
    --m_batches[static_cast<std::size_t>(p.batch)].unhanded;
    m_heldPrefetched.erase(p.job.id);
  }
  ++m_stats.handed_from_prefetch;
  ++g.handed_since;
  return p;
}

bool Reserver::serveGroup(std::size_t gi, SteadyClock::time_point now) {
  Group& g = m_groups[gi];
  bool did = false;
  while (!g.waiting.empty() && !g.prefetched.empty()) {
    ClientId c = g.waiting.front();
    g.waiting.pop_front();
    Prefetched p = takePrefetched(g);
    handOut(g, c, std::move(p.job), true, p.batch);
    did = true;
  }
  if (m_draining || !m_startupReleased) return did;
  const bool want = !g.waiting.empty() || (g.workers > 0 && g.prefetched.size() < lowWater(g));
  if (!want) return did;
  if (heldClaimsNow()) {
    // Singletons keep the written-lock claim (their unique indexes are keyed on locked_by),
    // asked for beside the held claims of everything else.
    const bool singletons_ok =
        !g.singletons_exhausted || now - g.singletons_at >= m_settings.poll_interval;
    if (singletons_ok && m_dbUp && !m_reservations.busy()) did |= reserveSingletons(gi, now);
    const bool retry_ok = !g.exhausted || now - g.exhausted_at >= m_settings.poll_interval;
    if (retry_ok && m_opening < 0 && (!g.waiting.empty() || !g.exhausted)) did |= openBatchFor(gi, now);
    return did;
  }
  if (!m_dbUp || !g.reserving.empty() || m_reservations.busy()) return did;
  const bool retry_ok = !g.exhausted || now - g.exhausted_at >= m_settings.poll_interval;
  if (!retry_ok) return did;
  if (!g.waiting.empty() || !g.exhausted) did |= reserveFor(gi, now);
  return did;
}

std::size_t Reserver::lowWater(const Group& g) const noexcept {
  // Reserve when workers wait, and also ahead of need while a backlog exists, so that a worker
  // finishing a job finds the next one in memory instead of waiting for a round trip: the low
  // water mark covers one reservation latency (and half again) at the recent hand-out rate. A
  // fixed mark of a few jobs per worker let a fast farm drain 2,000 prefetched jobs and then
  // idle for the whole next statement (the bench's 42 ms p99.9 hand-off).
  const double ahead = g.rate_per_s * std::chrono::duration<double>(g.reserve_latency).count() * 1.5;
  return std::clamp<std::size_t>(static_cast<std::size_t>(ahead),
                                 static_cast<std::size_t>(std::max(g.workers, 1)) * 2,
                                 static_cast<std::size_t>(std::max(m_settings.max_batch, 1)));
}

int Reserver::claimLimit(Group& g) noexcept {
  const int base = std::max(1, m_settings.fetch_batch_size * std::max({g.workers, g.config.workers, 1}));
  if (g.batch < base) g.batch = base;
  const int waiting = static_cast<int>(g.waiting.size());
  return std::min(std::max(g.batch, waiting), std::max(m_settings.max_batch, waiting));
}

bool Reserver::reserveFor(std::size_t gi, SteadyClock::time_point now) {
  if (m_reservations.busy()) return false;
  Group& g = m_groups[gi];
  const int limit = claimLimit(g);
  ReserveRequest req;
  req.queue = g.config.queue;
  req.min_priority = g.config.min_priority;
  req.max_priority = g.config.max_priority;
  // The named workers leave the waiting FIFO while the statement runs, so that prefetched jobs
  // arriving meanwhile are not handed to them too.
  for (ClientId c : g.waiting) req.worker_names.push_back(m_clients[c].name);
  g.reserving.assign(g.waiting.begin(), g.waiting.end());
  g.waiting.clear();
  req.prefetch = limit - static_cast<int>(req.worker_names.size());
  req.prefetch_owner = m_prefetchOwner;
  if (m_settings.forced_latency && allIdle())
    req.forced_latency = std::chrono::duration_cast<std::chrono::microseconds>(
        m_settings.forced_latency_amount);
  g.reserve_started = now;
  m_reservations.submit(gi, std::move(req));
  return true;
}

bool Reserver::collectReservation(SteadyClock::time_point now) {
  auto out = m_reservations.take();
  if (!out) return false;
  Group& g = m_groups[out->group];
  m_stats.db_busy_ns += out->busy_ns;
  m_stats.db_statement.record(out->busy_ns);
  std::vector<ClientId> named = std::move(g.reserving);
  g.reserving.clear();
  auto requeue = [&](const std::vector<ClientId>& ids) {
    // Back to the front, in their original order: they asked first.
    for (auto it = ids.rbegin(); it != ids.rend(); ++it)
      if (m_clients[*it].live && m_clients[*it].state == ClientState::Waiting) g.waiting.push_front(*it);
  };
  if (out->error) {
    ++m_stats.db_errors;
    requeue(named);
    if (out->request.singletons_only) {
      g.singletons_exhausted = true;
      g.singletons_at = now;
    }
    if (out->kind == DbErrorKind::ConnectionLost || out->kind == DbErrorKind::InDoubt) {
      spdlog::warn("reserve: database connection lost ({}); reconciling", *out->error);
      m_reserveInDoubt = true;
      m_reserveInDoubtNames = out->request.worker_names;
      noteDbDown();
    } else if (out->kind == DbErrorKind::Retryable) {
      spdlog::info("reserve: transient database error: {}", *out->error);
    } else {
      throw DbError(out->kind, "", "reserve: " + *out->error);
    }
    return true;
  }
  ++m_stats.statements.reserve;
  auto& result = out->result;
  const std::size_t got = result.assigned.size() + result.prefetched.size();
  const std::size_t limit = out->request.worker_names.size() + static_cast<std::size_t>(std::max(0, out->request.prefetch));
  m_stats.reserved_rows += got;
  if (!out->request.singletons_only) ++m_stats.reservations;
  if (out->request.singletons_only) {
    // Beside the held claims: only the singletons' own exhaustion is tracked. Each goes into
    // the prefetched list at its priority, ahead of held rows of lower priority.
    g.singletons_exhausted = got < limit;
    g.singletons_at = now;
    for (auto& job : result.prefetched) {
      auto at = std::find_if(g.prefetched.begin(), g.prefetched.end(),
                             [&](const Prefetched& p) { return p.job.priority > job.priority; });
      g.prefetched.insert(at, Prefetched{std::move(job), now, -1});
    }
    serveGroup(out->group, now);
    return true;
  }
  noteClaim(g, got, limit, g.reserve_started, now);
  // Rows 1..k went to the named workers, in FIFO order. A worker that went away meanwhile (or a
  // name we do not know: never trust it) gets nothing: its row goes back.
  std::unordered_map<std::string, ClientId> by_name;
  for (ClientId c : named)
    if (m_clients[c].live && m_clients[c].state == ClientState::Waiting) by_name.emplace(m_clients[c].name, c);
  std::vector<ClientId> unserved;
  for (auto& [name, job] : result.assigned) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      queueUnlock(job.id, name);
      continue;
    }
    const ClientId c = it->second;
    by_name.erase(it);
    ++g.handed_since;
    handOut(g, c, std::move(job), false);
  }
  for (ClientId c : named)
    if (by_name.count(m_clients[c].name) && by_name[m_clients[c].name] == c) unserved.push_back(c);
  requeue(unserved);
  for (auto& job : result.prefetched) g.prefetched.push_back(Prefetched{std::move(job), now, -1});
  serveGroup(out->group, now);
  return true;
}

void Reserver::noteClaim(Group& g, std::size_t got, std::size_t limit,
                         SteadyClock::time_point started, SteadyClock::time_point now) {
  g.reserve_latency = now - started;
  if (g.rate_since != SteadyClock::time_point{} && now > g.rate_since) {
    const double secs = std::chrono::duration<double>(now - g.rate_since).count();
    const double rate = static_cast<double>(g.handed_since) / secs;
    g.rate_per_s = g.rate_per_s == 0 ? rate : 0.5 * g.rate_per_s + 0.5 * rate;
  }
  g.handed_since = 0;
  g.rate_since = now;
  const int base = std::max(1, m_settings.fetch_batch_size * std::max({g.workers, g.config.workers, 1}));
  m_stats.batch_sizes.record(got);
  m_stats.max_batch_seen = std::max<std::uint64_t>(m_stats.max_batch_seen, got);
  if (got < limit) {
    g.exhausted = true;
    g.exhausted_at = now;
    g.batch = base;
    if (got == 0) ++m_stats.empty_reservations;
  } else {
    g.exhausted = false;
    g.batch = std::min(g.batch * 2, std::max(m_settings.max_batch, base));
  }
}

// --- held-lock batches ------------------------------------------------------------------------

std::size_t Reserver::batchesInUse() const noexcept {
  std::size_t n = 0;
  for (const auto& b : m_batches) n += b.state != Batch::State::Free ? 1 : 0;
  return n;
}

bool Reserver::reserveSingletons(std::size_t gi, SteadyClock::time_point now) {
  Group& g = m_groups[gi];
  ReserveRequest req;
  req.queue = g.config.queue;
  req.min_priority = g.config.min_priority;
  req.max_priority = g.config.max_priority;
  req.prefetch = std::max({g.workers, g.config.workers, 1});
  req.prefetch_owner = m_prefetchOwner;
  req.singletons_only = true;
  g.singletons_exhausted = true;  // until it comes back: one in flight per group
  g.singletons_at = now;
  m_reservations.submit(gi, std::move(req));
  return true;
}

bool Reserver::heldClaimsNow() noexcept {
  const bool held = heldMode() && (m_settings.held_max_hosts <= 0 || m_liveHosts <= m_settings.held_max_hosts);
  if (heldMode() && held != m_heldClaims) {
    spdlog::info("{} hosts live (held_max_hosts {}): {} claims from now on", m_liveHosts,
                 m_settings.held_max_hosts, held ? "held-lock" : "written-lock");
    ++m_stats.claim_mode_changes;
  }
  m_heldClaims = held;
  m_stats.held_claims_now = held;
  m_stats.live_hosts = static_cast<std::uint64_t>(std::max(m_liveHosts, 0));
  return held;
}

bool Reserver::openBatchFor(std::size_t gi, SteadyClock::time_point now) {
  int free = -1;
  for (std::size_t i = 0; i < m_batches.size(); ++i)
    if (m_batches[i].state == Batch::State::Free && !m_channels[i]->busy()) {
      free = static_cast<int>(i);
      break;
    }
  if (free < 0) return false;
  Group& g = m_groups[gi];
  const int limit = claimLimit(g);
  BatchWork w;
  w.kind = BatchWork::Kind::Open;
  w.group = gi;
  w.limit = limit;
  // Start past the rows this server's open batches hold: a claim from the head of the queue
  // walks every one of them and fails to lock each (docs/server.md, "Claims start past the open
  // batches"). Every kBoundedClaims-th claim starts from the head anyway.
  if (g.bounded_claims < kBoundedClaims) {
    for (const Batch& ob : m_batches) {
      if ((ob.state != Batch::State::Open && ob.state != Batch::State::Closing) || ob.group != gi || !ob.last_key)
        continue;
      const auto& k = *ob.last_key;
      if (!w.request.after || std::tie(w.request.after->priority, w.request.after->run_at, w.request.after->id) <
                                  std::tie(k.priority, k.run_at, k.id))
        w.request.after = k;
    }
  }
  g.bounded_claims = w.request.after ? g.bounded_claims + 1 : 0;
  w.request.queue = g.config.queue;
  w.request.min_priority = g.config.min_priority;
  w.request.max_priority = g.config.max_priority;
  if (m_settings.forced_latency && allIdle())
    w.request.forced_latency = std::chrono::duration_cast<std::chrono::microseconds>(
        m_settings.forced_latency_amount);
  Batch& b = m_batches[static_cast<std::size_t>(free)];
  b = Batch{};
  b.bounded = w.request.after.has_value();
  b.state = Batch::State::Opening;
  b.group = gi;
  b.opened_at = now;
  g.reserve_started = now;
  m_opening = free;
  m_channels[static_cast<std::size_t>(free)]->submit(std::move(w));
  return true;
}

bool Reserver::collectBatches(SteadyClock::time_point now) {
  bool did = false;
  for (std::size_t i = 0; i < m_channels.size(); ++i) {
    auto out = m_channels[i]->take();
    if (!out) continue;
    did = true;
    m_stats.db_busy_ns += out->busy_ns;
    m_stats.db_statement.record(out->busy_ns);
    if (out->reconnected) ++m_stats.db_reconnects;
    if (out->kind == BatchWork::Kind::Open) {
      m_stats.statements.claim += static_cast<std::uint64_t>(out->statements);
      applyOpen(static_cast<int>(i), *out, now);
    } else {
      m_stats.statements.close += static_cast<std::uint64_t>(out->statements);
      applyClose(static_cast<int>(i), *out);
    }
  }
  return did;
}

void Reserver::applyOpen(int bi, BatchOutcome& out, SteadyClock::time_point now) {
  Batch& b = m_batches[static_cast<std::size_t>(bi)];
  Group& g = m_groups[out.group];
  if (m_opening == bi) m_opening = -1;
  if (out.error) {
    // Nothing was written: the claim is simply gone. Ask again after a pause, not at once.
    ++m_stats.db_errors;
    b = Batch{};
    g.exhausted = true;
    g.exhausted_at = now - m_settings.poll_interval + std::chrono::milliseconds(100);
    if (out.error_kind == DbErrorKind::GiveUp) throw DbError(out.error_kind, "", "claim: " + *out.error);
    spdlog::warn("claim: {}", *out.error);
    return;
  }
  ++m_stats.reservations;
  m_stats.reserved_rows += out.jobs.size();
  noteClaim(g, out.jobs.size(), static_cast<std::size_t>(out.limit), g.reserve_started, now);
  if (b.bounded && out.jobs.size() < static_cast<std::size_t>(out.limit)) {
    // Short past the open batches says nothing of the rows before them: ask from the head next.
    g.exhausted = false;
    g.bounded_claims = kBoundedClaims;
  }
  if (!out.jobs.empty()) {
    const Job& last = out.jobs.back();
    b.last_key = ReserveRequest::Key{last.priority, last.run_at, last.id};
  }
  if (out.ended) {  // an empty claim, already committed by the channel: no batch
    b = Batch{};
    return;
  }
  ++m_stats.held_batches_opened;
  b.state = Batch::State::Open;
  for (auto& job : out.jobs) {
    // A row we already hold (handed out, or unhanded in another batch) whose earlier claim was
    // lost: that claim's owner still runs or hands it out; this batch only keeps it locked.
    if (m_ledger.holds(job.id) || m_heldPrefetched.count(job.id)) {
      ++m_stats.held_collisions;
      continue;
    }
    m_heldPrefetched.insert(job.id);
    g.prefetched.push_back(Prefetched{std::move(job), now, bi});
    ++b.unhanded;
  }
  serveGroup(out.group, now);
}

bool Reserver::closeDueBatches(SteadyClock::time_point now) {
  bool did = false;
  for (std::size_t i = 0; i < m_batches.size(); ++i) {
    Batch& b = m_batches[i];
    if (b.state != Batch::State::Open || m_channels[i]->busy()) continue;
    const bool done = b.unhanded == 0 && b.outstanding == 0;
    if (done || m_draining || now - b.opened_at >= m_settings.batch_max_open) {
      submitClose(static_cast<int>(i));
      did = true;
    }
  }
  return did;
}

void Reserver::submitClose(int bi) {
  Batch& b = m_batches[static_cast<std::size_t>(bi)];
  // Rows nobody took go back with the COMMIT.
  if (b.unhanded > 0) {
    auto& list = m_groups[b.group].prefetched;
    for (auto it = list.begin(); it != list.end();) {
      if (it->batch == bi) {
        m_heldPrefetched.erase(it->job.id);
        it = list.erase(it);
      } else {
        ++it;
      }
    }
    m_stats.held_released += b.unhanded;
    b.released = b.unhanded;
    b.unhanded = 0;
  }
  BatchWork w;
  w.kind = BatchWork::Kind::Close;
  w.group = b.group;
  for (JobId id : b.handed) {
    // Still running at the close: its lock is written (promotion), so it stays claimed after
    // the COMMIT, as an ordinary inst-jobs lock under the worker's name.
    const auto* e = m_ledger.find(id);
    if (e == nullptr || e->claim != Claim::Batch || e->batch != bi || e->work != Work::Running) continue;
    const ClientId c = e->client;
    const std::string name = c < m_clients.size() && m_clients[c].live ? m_clients[c].name : std::string();
    if (name.empty()) continue;  // cannot happen: a running job's worker is live or detached
    m_ledger.promoteSubmitted(id, name);
    b.promoting.emplace_back(id, name);
    w.close.promotions.push_back(LockTransfer{id, std::string(), name});
  }
  b.closing_completes = std::move(b.completes);
  b.closing_fails = std::move(b.fails);
  b.completes.clear();
  b.fails.clear();
  for (auto& p : b.closing_completes) w.close.completes.push_back(p.result.id);
  for (auto& p : b.closing_fails) {
    w.close.failures.push_back(Failure::of(p.result, {}));
  }
  b.state = Batch::State::Closing;
  m_channels[static_cast<std::size_t>(bi)]->submit(std::move(w));
}

void Reserver::applyClose(int bi, BatchOutcome& out) {
  Batch& b = m_batches[static_cast<std::size_t>(bi)];
  if (out.error) {
    ++m_stats.db_errors;
    batchLost(bi, *out.error);
    if (out.error_kind == DbErrorKind::GiveUp)
      throw DbError(out.error_kind, "", "closing a batch: " + *out.error);
    return;
  }
  const auto open_ns = nanosSince(b.opened_at, SteadyClock::now());
  m_stats.held_open_time.record(open_ns);
  m_stats.held_batch_jobs.record(b.handed.size());
  m_stats.held_batch_jobs_sum += b.handed.size();
  ++m_stats.held_batches_closed;
  std::map<ClientId, Acks> acks;
  const bool may_unblock = settle(b.closing_completes, out.closed.completes, b.closing_fails,
                                  out.closed.failures, acks);
  m_stats.held_promotions += out.closed.promotions.applied.size();
  for (auto& [id, name] : b.promoting) endPromotion(id, name, true);
  if (!out.closed.promotions.mismatched.empty())
    spdlog::warn("{} promotions found their row changed under the batch's own lock",
                 out.closed.promotions.mismatched.size());
  for (auto& [c, a] : acks) m_sink.acknowledge(c, a.jobs, a.failures);
  // Rows it gave back are claimable now, not before: a claim that came back short while this
  // close was in flight must not keep the group waiting for its poll interval.
  if (b.released > 0) m_groups[b.group].exhausted = false;
  b = Batch{};
  if (may_unblock) jobsMayExist();
}

void Reserver::endPromotion(JobId id, const std::string& worker, bool written) {
  if (!m_ledger.promotionDone(id, written)) return;
  const auto* e = m_ledger.find(id);
  if (e->work == Work::Undelivered) {  // never reached the worker
    queueUnlock(id, worker);
    m_ledger.forget(id);
    return;
  }
  // The close was lost: the lock is written now by a transfer from unlocked (uncertain: a
  // mismatch means the in-doubt COMMIT did promote it).
  if (!written) m_pendingTransfers.push_back(LockTransfer{id, std::string(), worker});
  if (!written && m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
}

void Reserver::batchLost(int bi, const std::string& why) {
  Batch& b = m_batches[static_cast<std::size_t>(bi)];
  ++m_stats.held_batches_lost;
  const std::size_t exposed = b.closing_completes.size() + b.closing_fails.size() + b.promoting.size();
  m_stats.held_lost_jobs += exposed;
  spdlog::warn("held batch lost ({}): {} results and {} running jobs go through the writer", why,
               b.closing_completes.size() + b.closing_fails.size(), b.promoting.size());
  // The rows are unlocked now (rolled back), or written (an in-doubt COMMIT that happened).
  // Results: compare-and-set against an unlocked row; a row gone or locked by someone else
  // meanwhile is a mismatch (the job may run again: counted in held_lost_jobs).
  for (auto& p : b.closing_completes) {
    p.db_owner.clear();
    if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
    m_pendingComplete.push_back(std::move(p));
  }
  for (auto& p : b.closing_fails) {
    p.db_owner.clear();
    if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
    m_pendingFail.push_back(std::move(p));
  }
  // The results above are the writer's now, against unlocked rows.
  for (const auto& p : b.closing_completes) m_ledger.batchLost(p.result.id);
  for (const auto& p : b.closing_fails) m_ledger.batchLost(p.result.id);
  for (auto& [id, name] : b.promoting) endPromotion(id, name, false);
  b = Batch{};
  jobsMayExist();
}

bool Reserver::releasePrefetched(Group& g) {
  if (g.prefetched.empty()) return false;
  for (auto& p : g.prefetched) {
    if (p.batch < 0) {
      queueUnlock(p.job.id, m_prefetchOwner);
    } else {
      // Its batch's COMMIT gives it back; the batch no longer waits for it.
      auto& b = m_batches[static_cast<std::size_t>(p.batch)];
      if (b.unhanded > 0) --b.unhanded;
      m_heldPrefetched.erase(p.job.id);
    }
  }
  g.prefetched.clear();
  return true;
}

bool Reserver::releaseStalePrefetch(SteadyClock::time_point now) {
  bool did = false;
  for (auto& g : m_groups) {
    // As inst-jobs: when the oldest prefetched job is stale, the whole group's list goes back.
    if (!g.prefetched.empty() &&
        now - g.prefetched.front().locked_at > m_settings.prefetched_jobs_timeout) {
      did |= releasePrefetched(g);
      g.exhausted = false;
    }
  }
  return did;
}

}  // namespace hostq::server
