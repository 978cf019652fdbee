#include "server/reserver.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "protocol/job_convert.hpp"
#include "protocol/messages.hpp"

// The reserver's core: workers, their requests and results, hand-outs, and the duty cycle
// (poll). Claims and held-lock batches: reserver_claims.cpp; the result writer's batches:
// reserver_writes.cpp; the loop connection's maintenance: reserver_maintenance.cpp.
namespace hostq::server {

namespace {

using Claim = JobLedger::Claim;
using Work = JobLedger::Work;

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

void Reserver::added(WorkerId id, const std::string& name, int pid, const WorkerConfig& config,
                     Transport transport) {
  if (id >= m_clients.size()) m_clients.resize(id + 1);
  Client& c = m_clients[id];
  c = Client{};
  c.live = true;
  c.name = name;
  c.pid = pid;
  c.transport = transport;
  c.group = groupFor(config);
  ++m_groups[c.group].workers;
  ++m_clientCount;
}

void Reserver::dropFromWaiting(ClientId c) {
  auto& w = m_groups[m_clients[c].group].waiting;
  w.erase(std::remove(w.begin(), w.end(), c), w.end());
}

void Reserver::gone(WorkerId id, Gone how) {
  if (id >= m_clients.size() || !m_clients[id].live) return;
  const bool died = how == Gone::Died;
  Client& c = m_clients[id];
  dropFromWaiting(id);
  auto& r = m_groups[c.group].reserving;
  r.erase(std::remove(r.begin(), r.end(), id), r.end());
  const std::vector<JobId> jobs = c.jobs;  // undelivered() edits c.jobs
  // The worker runs its jobs in the order they were handed out, so the slot's mark also says
  // that every job before it was begun: its result may have been held in the worker, unpushed,
  // when it died. None found (0, or a job of ours it no longer holds): none was begun.
  std::ptrdiff_t started_at = -1;
  if (c.started) {
    const auto it = std::find(jobs.begin(), jobs.end(), *c.started);
    if (it != jobs.end()) started_at = it - jobs.begin();
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const JobId job = jobs[i];
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
    if (c.started && static_cast<std::ptrdiff_t>(i) > started_at) {
      // Taken in a reply of several jobs and never begun: behind the job its slot named as
      // started (or none was). Given back without an attempt. (A worker that lies here only
      // costs the attempt count of its own jobs.)
      undelivered(id, job);
      ++m_stats.jobs_given_back;
      continue;
    }
    if (!died) spdlog::warn("worker {} left cleanly while holding job {}", c.name, job);
    queueResult(PendingResult{kNoClient, JobResult::failed(job, "process died"), e->owner});
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
  --m_clientCount;
}

void Reserver::detached(WorkerId id) {
  if (id >= m_clients.size() || !m_clients[id].live) return;
  Client& c = m_clients[id];
  dropFromWaiting(id);
  auto& r = m_groups[c.group].reserving;
  r.erase(std::remove(r.begin(), r.end(), id), r.end());
  c.detached = true;
  c.reattached = false;
  if (c.state == ClientState::Waiting) c.state = c.jobs.empty() ? ClientState::Idle : ClientState::Working;
}

void Reserver::reattached(WorkerId id, Transport transport) {
  if (id >= m_clients.size() || !m_clients[id].live) return;
  Client& c = m_clients[id];
  c.detached = false;
  c.reattached = true;
  c.transport = transport;
  c.started.reset();  // the new connection's slot will say
}

void Reserver::lastStarted(WorkerId id, JobId job) {
  if (id >= m_clients.size() || !m_clients[id].live) return;
  m_clients[id].started = job;
}

std::size_t Reserver::jobsHeld(WorkerId id) const {
  if (id >= m_clients.size() || !m_clients[id].live) return 0;
  std::size_t n = 0;
  for (JobId job : m_clients[id].jobs) {
    const auto* e = m_ledger.find(job);
    if (e != nullptr && e->work == Work::Running) ++n;
  }
  return n;
}

bool Reserver::holdsAnything(WorkerId id) const {
  if (id >= m_clients.size() || !m_clients[id].live) return false;
  if (!m_clients[id].jobs.empty()) return true;
  bool any = false;
  m_ledger.forEach([&](JobId, const JobLedger::Entry& e) { any |= e.client == id; });
  return any;
}

void Reserver::requestJob(ClientId id, std::uint64_t request_seq,
                          SteadyClock::time_point requested_at, std::uint16_t max_jobs, bool ahead) {
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
  c.max_jobs = std::clamp<std::uint16_t>(max_jobs, 1, protocol::kMaxJobsPerReserve);
  if (c.state == ClientState::Waiting) {
    // A repeated request (e.g. resent after an interrupted wait) replaces the old one.
    c.request_seq = request_seq;
    return;
  }
  c.state = ClientState::Waiting;
  c.request_seq = request_seq;
  c.requested_at = requested_at;
  c.ahead = ahead;
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

bool Reserver::enterHandOut(ClientId id, const Job& job, bool needs_transfer, int batch,
                            SteadyClock::time_point now) {
  const Client& c = m_clients[id];
  const bool stranded = job.strand.has_value() || job.singleton.has_value();
  if (batch >= 0) {
    // The batch's row lock is the claim; its close writes what is needed.
    if (!m_ledger.handOutFromBatch(job.id, id, batch, stranded, now)) return false;
    Batch& b = m_batches[static_cast<std::size_t>(batch)];
    ++b.outstanding;
    b.handed.push_back(job.id);
    return true;
  }
  if (needs_transfer) {
    if (!m_ledger.handOutPrefetched(job.id, id, m_prefetchOwner, c.name, stranded, now)) return false;
    m_pendingTransfers.push_back(LockTransfer{job.id, m_prefetchOwner, c.name});
    if (m_firstPendingAt == SteadyClock::time_point{}) m_firstPendingAt = now;
    return true;
  }
  return m_ledger.handOutAssigned(job.id, id, c.name, stranded, now);
}

void Reserver::addExtras(Group& g, ClientId id) {
  Client& c = m_clients[id];
  // Packed as Server::deliver packs them: frame after frame, a frame that does not fit its
  // record starting the next record.
  const ReserverSink::ReplyRoom reply = m_sink.replyRoom(id);
  const std::size_t first = protocol::jobAssignedFrameSize(m_handing.front(), c.name);
  if (reply.records == 0 || first > reply.record_bytes) return;
  std::size_t room = reply.record_bytes - first;
  std::size_t records_left = reply.records - 1;
  const auto now = SteadyClock::now();
  while (m_handing.size() < c.max_jobs &&
         g.prefetched.size() > g.waiting.size() + static_cast<std::size_t>(std::max(g.workers, 1))) {
    const Prefetched& next = g.prefetched.front();
    const std::size_t size = protocol::jobAssignedFrameSize(next.job, c.name);
    const bool next_record = size > room;
    if (next_record && (records_left == 0 || size > reply.record_bytes)) break;
    // enterHandOut refuses a job the ledger already holds (and then changes nothing).
    if (!enterHandOut(id, next.job, true, next.batch, now)) break;
    if (next_record) {
      --records_left;
      room = reply.record_bytes;
      ++m_stats.extra_reply_records;
    }
    room -= size;
    Prefetched p = takePrefetched(g);
    p.job.locked_by = c.name;
    ++m_stats.extra_jobs_handed_out;
    c.jobs.push_back(p.job.id);
    m_handing.push_back(std::move(p.job));
  }
}

void Reserver::handOut(Group& g, ClientId id, Job job, bool needs_transfer, int batch) {
  Client& c = m_clients[id];
  const auto now = SteadyClock::now();
  if (!enterHandOut(id, job, needs_transfer, batch, now)) {
    // Already in the ledger: a job a worker reported after a restart (adopted) that a claim of
    // ours found unlocked. It is somebody's already; the worker asks again.
    spdlog::warn("job {} claimed while it is already held; not handed out again", job.id);
    g.waiting.push_front(id);
    return;
  }
  c.state = ClientState::Working;
  c.jobs.push_back(job.id);
  job.locked_by = c.name;
  (c.ahead ? m_stats.handoff_ahead : m_stats.handoff).record(nanosSince(c.requested_at, now));
  m_handing.clear();
  m_handing.push_back(std::move(job));
  // Extras only from prefetched jobs this server holds a claim on (not the jobs a written-lock
  // claim assigned by name to other workers).
  if (c.max_jobs > 1 && (needs_transfer || batch >= 0)) addExtras(g, id);
  const auto sys = systemNow();
  for (const Job& j : m_handing) {
    const TimePoint ready = std::max(j.run_at, j.created_at);
    m_stats.enqueue_to_start.record(
        sys > ready ? static_cast<std::uint64_t>((sys - ready).count()) * 1000u : 0u);
  }
  m_stats.jobs_handed_out += m_handing.size();
  (c.transport == Transport::Shm ? m_stats.handed_out_shm : m_stats.handed_out_socket) += m_handing.size();
  const std::size_t sent = m_sink.deliver(id, m_handing, c.request_seq);
  for (std::size_t i = sent; i < m_handing.size(); ++i) undelivered(id, m_handing[i].id);
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
  // The duty cycle: the loop connection's health, what the database threads finished, results
  // due to the writer, hand-outs and claims, batches due to close, maintenance.
  if (!m_dbUp && !restoreDatabase(now)) return serveAll(now);  // prefetched jobs still go out
  bool did = false;
  if (!m_startupReleased) did |= startupRelease(now);
  did |= collectWrites();
  did |= collectReservation(now);
  did |= collectBatches(now);
  did |= flushIfDue(now);
  did |= serveAll(now);
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

bool Reserver::serveAll(SteadyClock::time_point now) {
  bool did = false;
  const std::size_t n = m_groups.size();
  for (std::size_t k = 0; k < n; ++k) did |= serveGroup((m_nextGroup + k) % n, now);
  if (n) m_nextGroup = (m_nextGroup + 1) % n;  // round-robin start: no group starves another
  return did;
}

bool Reserver::flushIfDue(SteadyClock::time_point now) {
  const bool due =
      pendingResults() + m_pendingUnlock.size() >= static_cast<std::size_t>(m_settings.flush_batch) ||
      (m_firstPendingAt != SteadyClock::time_point{} && now - m_firstPendingAt >= m_settings.flush_delay) ||
      m_draining;
  if (!due || m_writer.busy()) return false;
  const bool did = submitWrites(now, m_draining);
  m_firstPendingAt = (m_pendingComplete.size() + m_pendingFail.size() + m_pendingUnlock.size() +
                      m_pendingTransfers.size()) > 0
                         ? now
                         : SteadyClock::time_point{};
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
    if (c.live && c.working()) return false;
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
    // The oldest job unreported is the one running: a worker runs its jobs in the order given.
    const char* state = c.working()                          ? "working"
                        : c.state == ClientState::Waiting   ? "waiting"
                                                             : "idle";
    out.push_back(ClientView{c.name, c.pid, c.transport, state, c.jobs_done,
                             c.jobs.empty() ? std::nullopt : std::optional<JobId>(c.jobs.front())});
  }
  return out;
}

}  // namespace hostq::server
