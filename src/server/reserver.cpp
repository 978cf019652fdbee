#include "server/reserver.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <unordered_set>

namespace hostq::server {

namespace {

using Claim = JobLedger::Claim;
using Work = JobLedger::Work;

std::uint64_t nanosSince(SteadyClock::time_point from, SteadyClock::time_point to) {
  return to > from ? static_cast<std::uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count())
                   : 0;
}

TimePoint systemNow() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

}  // namespace

Reserver::Reserver(Store& store, ResultWriter& writer, ReservationRunner& reservations,
                   const ServerSettings& settings, std::string host, ReserverSink& sink,
                   ServerStats& stats, std::vector<BatchChannel*> channels)
    : m_store(store),
      m_writer(writer),
      m_reservations(reservations),
      m_settings(settings),
      m_host(std::move(host)),
      m_prefetchOwner("prefetch:" + m_host),
      m_sink(sink),
      m_stats(stats),
      m_channels(std::move(channels)),
      m_batches(m_channels.size()) {
  const auto now = SteadyClock::now();
  m_startedAt = now;
  // The first global purge lands at a random point of the first interval, so that servers that
  // start together do not all take the advisory lock at once (inst-jobs §2.4).
  std::mt19937_64 rng{std::random_device{}()};
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(
      m_settings.orphan_purge_interval);
  m_nextPurge = now + std::chrono::milliseconds(
                          interval.count() > 0 ? static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(interval.count())) : 0);
}

std::size_t Reserver::groupFor(const WorkerConfig& config) {
  for (std::size_t i = 0; i < m_groups.size(); ++i)
    if (m_groups[i].config == config) return i;
  Group g;
  g.config = config;
  m_groups.push_back(std::move(g));
  return m_groups.size() - 1;
}

ClientId Reserver::addClient(std::string name, int pid, const WorkerConfig& config,
                             Transport transport, const std::vector<JobId>& held_jobs) {
  ClientId id;
  if (!m_freeIds.empty()) {
    id = m_freeIds.back();
    m_freeIds.pop_back();
  } else {
    id = static_cast<ClientId>(m_clients.size());
    m_clients.emplace_back();
  }
  Client& c = m_clients[id];
  c = Client{};
  c.live = true;
  c.name = std::move(name);
  c.pid = pid;
  c.transport = transport;
  c.group = groupFor(config);
  ++m_groups[c.group].workers;
  ++m_clientCount;
  for (JobId job : held_jobs) {
    if (!m_ledger.adopt(job, id, c.name, Work::Running)) continue;  // already ours (a reconnect)
    queueAdoption(job, c.name);
    c.jobs.push_back(job);
    c.state = ClientState::Working;
    if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
  }
  return id;
}

void Reserver::queueAdoption(JobId job, const std::string& worker) {
  // The row is locked by our prefetch owner (the old server never wrote the transfer), or it is
  // unlocked: a held-lock batch's claim died with the old server, or the start-up release freed
  // it. Either way nobody else holds it, so it becomes the worker's; one CAS row of each
  // matches at most. A row locked by anyone else is not taken (the result then mismatches).
  m_pendingTransfers.push_back(LockTransfer{job, m_prefetchOwner, worker});
  m_pendingTransfers.push_back(LockTransfer{job, std::string(), worker});
  if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
}

void Reserver::dropFromWaiting(ClientId c) {
  auto& w = m_groups[m_clients[c].group].waiting;
  w.erase(std::remove(w.begin(), w.end(), c), w.end());
}

void Reserver::removeClient(ClientId id, bool died) {
  if (id >= m_clients.size() || !m_clients[id].live) return;
  Client& c = m_clients[id];
  dropFromWaiting(id);
  auto& r = m_groups[c.group].reserving;
  r.erase(std::remove(r.begin(), r.end(), id), r.end());
  const std::vector<JobId> jobs = c.jobs;  // undelivered() edits c.jobs
  for (JobId job : jobs) {
    const auto* e = m_ledger.find(job);
    if (e == nullptr || e->work != Work::Running) continue;
    // A job the worker held when it went away: it may have run part-way, so it counts as an
    // attempt ("process died"), as inst-jobs' orphan recovery does. A clean goodbye while
    // holding a job is a worker bug; treat it the same way rather than lose the job.
    if (!died && c.reattached) {
      // Reconnected only to say goodbye (a stopping worker flushing its results): a job it
      // still holds was handed out while it was away and never reached it.
      undelivered(id, job);
      continue;
    }
    if (!died) spdlog::warn("worker {} left cleanly while holding job {}", c.name, job);
    JobResult r;
    r.id = job;
    r.success = false;
    r.error = "process died";
    queueResult(PendingResult{kNoClient, r, e->owner});
    ++m_stats.jobs_rescheduled_died;
  }
  // Results already reported stay pending and are written; their acks go nowhere.
  auto orphan = [id](std::vector<PendingResult>& v) {
    for (auto& p : v)
      if (p.client == id) p.client = kNoClient;
  };
  orphan(m_pendingComplete);
  orphan(m_pendingFail);
  for (auto& b : m_batches) {
    orphan(b.completes);
    orphan(b.fails);
    orphan(b.closing_completes);
    orphan(b.closing_fails);
  }
  m_ledger.orphan(id);
  --m_groups[c.group].workers;
  c = Client{};
  m_freeIds.push_back(id);
  --m_clientCount;
}

void Reserver::detachClient(ClientId id) {
  if (id >= m_clients.size() || !m_clients[id].live) return;
  Client& c = m_clients[id];
  dropFromWaiting(id);
  auto& r = m_groups[c.group].reserving;
  r.erase(std::remove(r.begin(), r.end(), id), r.end());
  c.detached = true;
  c.reattached = false;
  if (c.state == ClientState::Waiting) c.state = c.jobs.empty() ? ClientState::Idle : ClientState::Working;
}

void Reserver::reattachClient(ClientId id, Transport transport) {
  if (id >= m_clients.size() || !m_clients[id].live) return;
  Client& c = m_clients[id];
  c.detached = false;
  c.reattached = true;
  c.transport = transport;
}

std::size_t Reserver::jobsHeld(ClientId id) const noexcept {
  if (id >= m_clients.size() || !m_clients[id].live) return 0;
  std::size_t n = 0;
  for (JobId job : m_clients[id].jobs) {
    const auto* e = m_ledger.find(job);
    if (e != nullptr && e->work == Work::Running) ++n;
  }
  return n;
}

bool Reserver::holdsAnything(ClientId id) const noexcept {
  if (id >= m_clients.size() || !m_clients[id].live) return false;
  if (!m_clients[id].jobs.empty()) return true;
  bool any = false;
  m_ledger.forEach([&](JobId, const JobLedger::Entry& e) { any |= e.client == id; });
  return any;
}

void Reserver::requestJob(ClientId id, std::uint64_t request_seq,
                          SteadyClock::time_point requested_at) {
  if (id >= m_clients.size() || !m_clients[id].live || m_clients[id].detached) return;
  Client& c = m_clients[id];
  if (c.reattached) {
    // The worker sends its first request of a connection after the results it is resending, on
    // the same socket: a job it still has no result for was handed out while it was away and
    // never reached it. Plain unlock, no attempt.
    c.reattached = false;
    const auto jobs = c.jobs;
    for (JobId job : jobs) {
      spdlog::info("worker {} reconnected without job {}: it never got it; unlocking", c.name, job);
      undelivered(id, job);
    }
  }
  if (c.state == ClientState::Waiting) {
    // A repeated request (e.g. resent after an interrupted wait) replaces the old one.
    c.request_seq = request_seq;
    return;
  }
  c.state = ClientState::Waiting;
  c.request_seq = request_seq;
  c.requested_at = requested_at;
  m_groups[c.group].waiting.push_back(id);
}

void Reserver::reportResult(ClientId id, const JobResult& result) {
  const auto* e = m_ledger.find(result.id);
  std::string owner;
  if (e != nullptr) {
    if (e->work == Work::Reported) return;  // a duplicate report; the first one wins
    owner = e->owner;
  } else {
    // Not ours: a result resent after a server restart (or a confused peer). The row is locked
    // by the worker's name, or still by the prefetch owner if the old server never wrote the
    // transfer: adopt it with a transfer first, so the result's compare-and-set finds it under
    // the worker's name either way (and the start-up release cannot free it meanwhile).
    owner = id < m_clients.size() ? m_clients[id].name : std::string();
    m_ledger.adopt(result.id, id, owner, Work::Running);
    queueAdoption(result.id, owner);
  }
  if (id < m_clients.size() && m_clients[id].live) {
    auto& jobs = m_clients[id].jobs;
    jobs.erase(std::remove(jobs.begin(), jobs.end(), result.id), jobs.end());
    ++m_clients[id].jobs_done;
    if (jobs.empty() && m_clients[id].state == ClientState::Working)
      m_clients[id].state = ClientState::Idle;
  }
  queueResult(PendingResult{id, result, std::move(owner)});
}

void Reserver::queueResult(PendingResult p) {
  m_ledger.report(p.result.id);
  const auto* e = m_ledger.find(p.result.id);
  if (e != nullptr && e->claim == Claim::Batch) {
    // Claimed by an open batch: written by its close, in its transaction.
    Batch& b = m_batches[static_cast<std::size_t>(e->batch)];
    if (b.outstanding > 0) --b.outstanding;
    (p.result.success ? b.completes : b.fails).push_back(std::move(p));
    return;
  }
  if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
  (p.result.success ? m_pendingComplete : m_pendingFail).push_back(std::move(p));
}

void Reserver::queueUnlock(JobId id, const std::string& owner) {
  m_pendingUnlock.push_back(OwnedJob{id, owner});
  if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = SteadyClock::now();
}

void Reserver::undelivered(ClientId id, JobId job) {
  // Never reached the worker: a plain unlock, no attempt (inst-jobs §2.4). With its transfer
  // or promotion in flight, the row's owner is known only when that write commits.
  const auto* e = m_ledger.find(job);
  if (e == nullptr) return;
  const int batch = e->batch;
  std::string owner;
  const auto release = m_ledger.undeliver(job, owner);
  if (!release) return;
  switch (*release) {
    case JobLedger::Release::Forget: {  // claimed by an open batch: its COMMIT gives it back
      Batch& b = m_batches[static_cast<std::size_t>(batch)];
      if (b.outstanding > 0) --b.outstanding;
      break;
    }
    case JobLedger::Release::UnlockNow:
      queueUnlock(job, owner);
      break;
    case JobLedger::Release::UnlockLater:
      break;
  }
  if (id < m_clients.size() && m_clients[id].live) {
    auto& jobs = m_clients[id].jobs;
    jobs.erase(std::remove(jobs.begin(), jobs.end(), job), jobs.end());
    if (jobs.empty() && m_clients[id].state == ClientState::Working)
      m_clients[id].state = ClientState::Idle;
  }
}

void Reserver::handOut(Group& g, ClientId id, Job job, bool needs_transfer, int batch) {
  (void)g;
  Client& c = m_clients[id];
  const auto now = SteadyClock::now();
  const bool stranded = job.strand.has_value() || job.singleton.has_value();
  bool entered = false;
  if (batch >= 0) {
    // The batch's row lock is the claim; its close writes what is needed.
    entered = m_ledger.handOutFromBatch(job.id, id, batch, stranded, now);
    if (entered) {
      Batch& b = m_batches[static_cast<std::size_t>(batch)];
      ++b.outstanding;
      b.handed.push_back(job.id);
    }
  } else if (needs_transfer) {
    entered = m_ledger.handOutPrefetched(job.id, id, m_prefetchOwner, c.name, stranded, now);
    if (entered) {
      m_pendingTransfers.push_back(LockTransfer{job.id, m_prefetchOwner, c.name});
      if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = now;
    }
  } else {
    entered = m_ledger.handOutAssigned(job.id, id, c.name, stranded, now);
  }
  if (!entered) {
    // Already in the ledger: a job a worker reported after a restart (adopted) that a claim of
    // ours found unlocked. It is somebody's already; the worker asks again.
    spdlog::warn("job {} claimed while it is already held; not handed out again", job.id);
    m_groups[c.group].waiting.push_front(id);
    return;
  }
  c.state = ClientState::Working;
  c.jobs.push_back(job.id);
  job.locked_by = c.name;
  m_stats.handoff.record(nanosSince(c.requested_at, now));
  const TimePoint ready = std::max(job.run_at, job.created_at);
  const auto sys = systemNow();
  m_stats.enqueue_to_start.record(
      sys > ready ? static_cast<std::uint64_t>((sys - ready).count()) * 1000u : 0u);
  ++m_stats.jobs_handed_out;
  ++(c.transport == Transport::Shm ? m_stats.handed_out_shm : m_stats.handed_out_socket);
  if (!m_sink.deliver(id, job, c.request_seq)) undelivered(id, job.id);
}

bool Reserver::serveGroup(std::size_t gi, SteadyClock::time_point now) {
  Group& g = m_groups[gi];
  bool did = false;
  while (!g.waiting.empty() && !g.prefetched.empty()) {
    ClientId c = g.waiting.front();
    g.waiting.pop_front();
    Prefetched p = std::move(g.prefetched.front());
    g.prefetched.pop_front();
    if (p.batch >= 0) {
      --m_batches[static_cast<std::size_t>(p.batch)].unhanded;
      m_heldPrefetched.erase(p.job.id);
    }
    ++m_stats.handed_from_prefetch;
    ++g.handed_since;
    handOut(g, c, std::move(p.job), true, p.batch);
    did = true;
  }
  if (m_draining || !m_startupReleased) return did;
  const bool want = !g.waiting.empty() || (g.workers > 0 && g.prefetched.size() < lowWater(g));
  if (!want) return did;
  if (heldMode()) {
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

int Reserver::claimLimit(Group& g) const noexcept {
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
  w.request.queue = g.config.queue;
  w.request.min_priority = g.config.min_priority;
  w.request.max_priority = g.config.max_priority;
  if (m_settings.forced_latency && allIdle())
    w.request.forced_latency = std::chrono::duration_cast<std::chrono::microseconds>(
        m_settings.forced_latency_amount);
  Batch& b = m_batches[static_cast<std::size_t>(free)];
  b = Batch{};
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
  ++m_stats.held_batches_opened;
  m_stats.reserved_rows += out.jobs.size();
  noteClaim(g, out.jobs.size(), static_cast<std::size_t>(out.limit), g.reserve_started, now);
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
    ++b.rows;
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
    Failure f;
    f.id = p.result.id;
    f.error = p.result.error;
    f.run_at = p.result.run_at;
    f.count_attempt = p.result.count_attempt;
    f.permanent = p.result.permanent;
    w.close.failures.push_back(std::move(f));
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
  std::map<ClientId, std::vector<JobId>> acks;
  const bool may_unblock = settle(b.closing_completes, out.closed.completes, b.closing_fails,
                                  out.closed.failures, acks);
  m_stats.held_promotions += out.closed.promotions.applied.size();
  for (auto& [id, name] : b.promoting) endPromotion(id, name, true);
  if (!out.closed.promotions.mismatched.empty())
    spdlog::warn("{} promotions found their row changed under the batch's own lock",
                 out.closed.promotions.mismatched.size());
  for (auto& [c, ids] : acks) m_sink.acknowledge(c, ids);
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
    Failure f;
    f.id = p.result.id;
    f.locked_by = p.db_owner;
    f.error = p.result.error;
    f.run_at = p.result.run_at;
    f.count_attempt = p.result.count_attempt;
    f.permanent = p.result.permanent;
    batch.failures.push_back(std::move(f));
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
                      std::map<ClientId, std::vector<JobId>>& acks) {
  bool may_unblock = false;
  m_stats.jobs_completed += completed.applied.size();
  m_stats.result_mismatches += completed.mismatched.size();
  for (auto& p : completes) {
    if (const auto* e = m_ledger.find(p.result.id)) may_unblock |= e->stranded;
    m_ledger.forget(p.result.id);
    if (p.client != kNoClient) acks[p.client].push_back(p.result.id);
  }
  for (auto& fr : failed) {
    if (fr.outcome == FailOutcome::Mismatch)
      ++m_stats.result_mismatches;
    else
      ++m_stats.jobs_failed;
  }
  for (auto& p : fails) {
    m_ledger.forget(p.result.id);
    if (p.client != kNoClient) acks[p.client].push_back(p.result.id);
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
  std::map<ClientId, std::vector<JobId>> acks;
  if (!in.completes.empty()) ++m_stats.statements.complete;
  if (!in.fails.empty()) ++m_stats.statements.fail;
  bool may_unblock = settle(in.completes, out.completes, in.fails, out.failures, acks);
  if (!in.unlocks.empty()) {
    ++m_stats.statements.unlock;
    m_stats.jobs_unlocked += out.unlocks.applied.size();
    may_unblock = true;
  }
  for (auto& [c, ids] : acks) m_sink.acknowledge(c, ids);
  in = InFlight{};
  if (may_unblock) jobsMayExist();
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

void Reserver::periodicPurge(SteadyClock::time_point now) {
  if (now < m_nextPurge) return;
  m_nextPurge = now + m_settings.orphan_purge_interval;
  guarded("purge orphaned prefetch", [&] {
    auto n = m_store.unlockOrphanedPrefetchedJobs(std::chrono::duration_cast<std::chrono::seconds>(
        m_settings.prefetched_jobs_timeout * 4));
    ++m_stats.statements.maintenance;
    if (n && *n > 0) spdlog::info("released {} orphaned prefetched jobs", *n);
  });
}

bool Reserver::startupRelease(SteadyClock::time_point now) {
  if (m_startupReleased) return false;
  // Until the grace ends, workers of a previous server incarnation reconnect and claim what they
  // hold; only then can this host's stale `prefetch:` locks be released without freeing a job a
  // worker is running. With nothing locked under our prefetch name there is nothing to protect,
  // so a first start does not wait.
  if (!m_graceChecked) {
    m_graceChecked = true;
    std::int64_t held = 1;
    if (guarded("start-up check", [&] { held = m_store.countLockedBy(m_prefetchOwner); })) {
      ++m_stats.statements.maintenance;
      if (held == 0 && !(heldMode() && m_expectReconnects)) m_startedAt = now - m_settings.restart_grace;
    }
  }
  if (now - m_startedAt < m_settings.restart_grace) return false;
  // Adopted jobs' transfers must be written before the release, or it would free them.
  if (!m_pendingTransfers.empty() || m_writer.busy()) {
    submitWrites(now, true);
    return false;
  }
  bool ok = guarded("startup release", [&] {
    const int released = m_store.clearLocks(m_prefetchOwner);
    ++m_stats.statements.maintenance;
    if (released > 0) spdlog::info("released {} jobs prefetched by a previous server", released);
    const int orphans = m_store.unlockOrphanedJobs(m_host);
    ++m_stats.statements.maintenance;
    if (orphans > 0) spdlog::info("rescheduled {} jobs of dead workers on {}", orphans, m_host);
  });
  if (ok) m_startupReleased = true;
  return ok;
}

void Reserver::updateIdle(SteadyClock::time_point now) {
  m_nextIdleCheck = now + std::chrono::milliseconds(1);
  const bool busy = !allIdle();
  if (busy != m_busy) {
    m_busy = busy;
    ++m_stats.idle_transitions;
  }
}

bool Reserver::poll(SteadyClock::time_point now) {
  if (!m_dbUp) {
    if (now < m_dbRetryAt) {
      // Even without a database, prefetched jobs can still be handed out.
      bool did = false;
      for (std::size_t i = 0; i < m_groups.size(); ++i) did |= serveGroup(i, now);
      return did;
    }
    try {
      m_store.reconnect();
      m_dbUp = true;
      m_dbBackoff = std::chrono::milliseconds(50);
      ++m_stats.db_reconnects;
      spdlog::info("database connection re-established");
    } catch (const std::exception& e) {
      m_dbRetryAt = now + m_dbBackoff;
      m_dbBackoff = std::min(m_dbBackoff * 2, std::chrono::milliseconds(2000));
      spdlog::warn("database reconnect failed: {}", e.what());
      return false;
    }
    if (m_reserveInDoubt) {
      // A reservation died with the connection; if it committed, rows are locked under names
      // that nobody is serving. The prefetch owner's unknown rows go back now.
      std::vector<OwnedJob> mine;
      for (auto& g : m_groups)
        for (auto& p : g.prefetched) mine.push_back(OwnedJob{p.job.id, m_prefetchOwner});
      guarded("release in-doubt reservation", [&] {
        std::unordered_set<JobId> known;
        for (auto& o : mine) known.insert(o.id);
        m_ledger.forEach([&](JobId id, const JobLedger::Entry&) { known.insert(id); });
        auto rows = m_store.list(ListFlavor::Running, "", 100000, 0);
        std::vector<OwnedJob> stray;
        for (auto& j : rows) {
          if (!j.locked_by || known.count(j.id)) continue;
          bool ours = *j.locked_by == m_prefetchOwner;
          for (auto& n : m_reserveInDoubtNames)
            if (*j.locked_by == n) ours = true;
          if (ours) stray.push_back(OwnedJob{j.id, *j.locked_by});
        }
        if (!stray.empty()) m_store.unlock(stray);
        m_reserveInDoubt = false;
        m_reserveInDoubtNames.clear();
      });
    }
  }
  bool did = false;
  if (!m_startupReleased) did |= startupRelease(now);
  did |= collectWrites();
  did |= collectReservation(now);
  did |= collectBatches(now);
  const bool results_due =
      pendingResults() + m_pendingUnlock.size() >= static_cast<std::size_t>(m_settings.flush_batch) ||
      (m_firstPendingAt != SteadyClock::time_point{} && now - m_firstPendingAt >= m_settings.flush_delay) ||
      m_draining;
  if (results_due && !m_writer.busy()) {
    did |= submitWrites(now, m_draining);
    m_firstPendingAt = (m_pendingComplete.size() + m_pendingFail.size() + m_pendingUnlock.size() +
                        m_pendingTransfers.size()) > 0
                           ? now
                           : SteadyClock::time_point{};
  }
  const std::size_t n = m_groups.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t gi = (m_nextGroup + k) % n;
    did |= serveGroup(gi, now);
  }
  if (n) m_nextGroup = (m_nextGroup + 1) % n;
  did |= closeDueBatches(now);
  if (m_dbUp) {
    did |= releaseStalePrefetch(now);
    periodicPurge(now);
  }
  // A scan of every client: not on every turn of a busy loop (256 workers), but always before
  // the loop sleeps, so that idle is never stale while nothing happens.
  if (!did || now >= m_nextIdleCheck) updateIdle(now);
  return did;
}

SteadyClock::time_point Reserver::nextDeadline(SteadyClock::time_point now) const {
  auto next = now + m_settings.poll_interval;
  if (!m_dbUp) next = std::min(next, m_dbRetryAt);
  if (!m_startupReleased) next = std::min(next, m_startedAt + m_settings.restart_grace);
  // A due flush waits for the writer, and a due retry for the reservation in flight: their
  // threads ring the doorbell when they finish. Counting such a deadline (already past) here
  // made the loop spin at full speed for the whole statement: 10.4 M turns for 200,000 jobs.
  if (m_firstPendingAt != SteadyClock::time_point{} && !m_writer.busy())
    next = std::min(next, m_firstPendingAt + m_settings.flush_delay);
  for (auto& g : m_groups) {
    if (!g.prefetched.empty())
      next = std::min(next, g.prefetched.front().locked_at + m_settings.prefetched_jobs_timeout);
    if (!g.waiting.empty() && g.exhausted && !m_reservations.busy())
      next = std::min(next, g.exhausted_at + m_settings.poll_interval);
  }
  for (const auto& b : m_batches)
    if (b.state == Batch::State::Open) next = std::min(next, b.opened_at + m_settings.batch_max_open);
  next = std::min(next, m_nextPurge);
  return std::max(next, now);
}

void Reserver::jobsMayExist() noexcept {
  for (auto& g : m_groups) g.exhausted = false;
}

bool Reserver::drain() {
  m_draining = true;
  if (m_reservations.busy() && m_reservations.wait(std::chrono::seconds(5))) collectReservation(SteadyClock::now());
  for (auto& g : m_groups) g.waiting.clear();
  // Open batches close now (their running jobs promoted, the rest given back by the COMMIT),
  // before the written prefetch is released and the results flushed.
  for (std::size_t i = 0; i < m_channels.size(); ++i)
    if (m_channels[i]->busy() && m_channels[i]->wait(std::chrono::seconds(5))) collectBatches(SteadyClock::now());
  closeDueBatches(SteadyClock::now());
  for (std::size_t i = 0; i < m_channels.size(); ++i)
    if (m_channels[i]->busy() && m_channels[i]->wait(std::chrono::seconds(5))) collectBatches(SteadyClock::now());
  for (auto& g : m_groups) releasePrefetched(g);
  // Bounded: the pool escalates to KILL after slow_exit_timeout, and anything not written here is
  // recovered by the next server (workers resend un-acked results; the start-up release frees
  // the prefetched rows).
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (m_writer.busy() && !m_writer.wait(std::chrono::seconds(2))) break;
    collectWrites();
    submitWrites(SteadyClock::now(), true);
    if (m_writer.busy()) continue;
    if (pendingResults() == 0 && m_pendingUnlock.empty() && m_pendingTransfers.empty()) return true;
  }
  return false;
}

bool Reserver::allIdle() const noexcept {
  for (auto& c : m_clients)
    if (c.live && c.state == ClientState::Working) return false;
  return true;
}

bool Reserver::drained() {
  // A reservation in flight may have locked rows for workers still marked waiting: the queue
  // looks empty to hasRunnable() while those jobs are not done.
  if (!allIdle() || pendingResults() > 0 || m_reservations.busy() || batchesInUse() > 0) return false;
  for (auto& g : m_groups) {
    if (!g.prefetched.empty()) return false;
    if (g.workers == 0) continue;
    bool runnable = true;
    if (!guarded("idle check", [&] {
          runnable = m_store.hasRunnable(g.config.queue, g.config.min_priority, g.config.max_priority);
        }))
      return false;
    if (runnable) return false;
  }
  return true;
}

bool Reserver::drainedAsKnown() const {
  if (!allIdle() || pendingResults() > 0 || m_reservations.busy() || batchesInUse() > 0) return false;
  for (auto& g : m_groups)
    if (!g.prefetched.empty() || (g.workers > 0 && !g.exhausted)) return false;
  return true;
}

std::size_t Reserver::prefetchedCount() const noexcept {
  std::size_t n = 0;
  for (auto& g : m_groups) n += g.prefetched.size();
  return n;
}

std::vector<Reserver::ClientView> Reserver::clients() const {
  std::vector<ClientView> out;
  for (auto& c : m_clients) {
    if (!c.live) continue;
    const char* state = c.state == ClientState::Waiting   ? "waiting"
                        : c.state == ClientState::Working ? "working"
                                                          : "idle";
    out.push_back(ClientView{c.name, c.pid, c.transport, state, c.jobs_done,
                             c.jobs.empty() ? std::nullopt : std::optional<JobId>(c.jobs.back())});
  }
  return out;
}

void Reserver::noteDbDown() {
  m_dbUp = false;
  m_dbRetryAt = SteadyClock::now() + m_dbBackoff;
}

bool Reserver::guarded(const char* what, const std::function<void()>& fn) {
  const auto t0 = SteadyClock::now();
  struct Timer {
    ServerStats& s;
    SteadyClock::time_point t0;
    ~Timer() {
      const auto ns = nanosSince(t0, SteadyClock::now());
      s.db_statement.record(ns);
      s.db_busy_ns += ns;
    }
  } timer{m_stats, t0};
  try {
    fn();
    return true;
  } catch (const DbError& e) {
    ++m_stats.db_errors;
    switch (e.kind()) {
      case DbErrorKind::ConnectionLost:
      case DbErrorKind::InDoubt:
        spdlog::warn("{}: database connection lost ({}); will reconnect", what, e.what());
        if (std::string_view(what) == "reserve") m_reserveInDoubt = true;
        noteDbDown();
        return false;
      case DbErrorKind::Retryable:
        spdlog::info("{}: transient database error, retrying: {}", what, e.what());
        return false;
      case DbErrorKind::GiveUp:
        break;
    }
    spdlog::error("{}: database error: {}", what, e.what());
    throw;
  }
}

}  // namespace hostq::server
