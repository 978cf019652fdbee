#pragma once
// The reserver: the only code that talks to PostgreSQL on the hot path. It owns every job the
// server holds (prefetched, handed out, result pending) and every waiting request, and turns them
// into a few batched statements. Transport-agnostic: the server feeds it requests from the shared
// memory rings and the sockets alike, and it answers through a ReserverSink. Single-threaded: the
// server's loop thread owns it.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "hostq/config.hpp"
#include "hostq/job_result.hpp"
#include "store/store.hpp"
#include "hostq/worker_config.hpp"
#include "server/batch_channel.hpp"
#include "server/job_ledger.hpp"
#include "server/reservation_runner.hpp"
#include "server/result_writer.hpp"
#include "server/stats.hpp"
#include "server/worker_registry.hpp"

namespace hostq::server {

/// Where the reserver's answers go. Implemented by the server over shm and sockets.
class ReserverSink {
 public:
  virtual ~ReserverSink() = default;
  /// Hands `jobs` (one, or several answering one request) to the client. Returns how many it
  /// delivered, in order; the reserver unlocks the rest (0: none could be delivered at all).
  virtual std::size_t deliver(ClientId client, std::span<const Job> jobs, std::uint64_t request_seq) = 0;
  /// What a reply of several jobs to the client may fill: `records` ring records of
  /// `record_bytes` bytes of JobAssigned frames each (a frame never spans two records).
  /// records 0 = one job per reply (the socket).
  struct ReplyRoom {
    std::size_t record_bytes = 0;
    std::size_t records = 0;
  };
  virtual ReplyRoom replyRoom(ClientId client) = 0;
  /// Tells the client that the results for these jobs are durable, and what the database
  /// decided for each failure among them (retried or permanent: the worker's hooks follow it).
  virtual void acknowledge(ClientId client, const std::vector<JobId>& jobs,
                           const std::vector<FailResult>& failures) = 0;
};

class Reserver final : public WorkerJobs {
 public:
  /// `host` names this server's prefetch owner `prefetch:<host>`. `store` is the loop thread's
  /// connection (reservations, maintenance); `writer` writes result batches on its own.
  /// `channels` are the held-lock batch channels (docs/server.md); none = every claim is a
  /// written lock, as inst-jobs' own reservation.
  Reserver(Store& store, ResultWriter& writer, ReservationRunner& reservations,
           const ServerSettings& settings, std::string host, ReserverSink& sink, ServerStats& stats,
           std::vector<BatchChannel*> channels = {});

  // --- a worker's lifecycle, as the server's WorkerRegistry decides it -----------------------
  /// A worker registered under `id` (the registry's WorkerId, the index of its state here).
  void added(WorkerId id, const std::string& name, int pid, const WorkerConfig& config,
             Transport transport) override;
  /// The worker is gone. If it Died (EOF, its grace ran out) its handed-out job is rescheduled
  /// as "process died" (an attempt); if it Left (goodbye) it must not hold one.
  void gone(WorkerId id, Gone how) override;
  /// The connection of a live worker went away (the server dropped it, or the worker gave up on
  /// it and is registering again): it keeps its jobs, and gets nothing new, until reattached()
  /// or gone(). Without this a worker that ran a job and could not report it would see the job
  /// rescheduled as "process died" and run again by someone else, then resend its result.
  void detached(WorkerId id) override;
  /// The detached worker's process registered again: the same id, its jobs and pending acks.
  /// Its first request says what it holds: a job without a result by then never reached it.
  void reattached(WorkerId id, Transport transport) override;
  /// Jobs the client holds without a result (handed out, not reported).
  std::size_t jobsHeld(WorkerId id) const override;
  /// Jobs handed to the client, reported or not, that are not written yet: what a detach keeps
  /// (a result's acknowledgement too). Nothing held: nothing to keep.
  bool holdsAnything(WorkerId id) const override;
  /// The client asks for a job (long poll: answered only when a job is assigned), and takes up to
  /// `max_jobs` in one reply when the group has more prefetched than its workers need.
  void requestJob(ClientId client, std::uint64_t request_seq, SteadyClock::time_point requested_at,
                  std::uint16_t max_jobs = 1, bool ahead = false);
  /// What the client's shared-memory slot named as the job it had started when its connection
  /// closed (0: none). Once known, a job it holds that is not this one was never begun: should
  /// the worker be gone for good, it is given back (no attempt) instead of "process died".
  void lastStarted(WorkerId id, JobId job);
  /// The client reports a result. Acknowledged through the sink once durable.
  void reportResult(ClientId client, const JobResult& result);
  /// A job was handed to a client but the transport failed before it got there: plain unlock.
  void undelivered(ClientId client, JobId job);

  /// Does whatever is due: serves prefetched jobs, reserves, flushes results, releases stale
  /// prefetch. Returns true if it did any work.
  bool poll(SteadyClock::time_point now);
  /// When poll() next has something to do even if no event arrives.
  SteadyClock::time_point nextDeadline(SteadyClock::time_point now) const;
  /// New jobs may exist (NOTIFY arrived): groups that found nothing may ask again.
  void jobsMayExist() noexcept;

  /// Stop reserving; flush every pending result; give back prefetched jobs. Retries a few times
  /// on database errors. Returns true when nothing is left in memory that the DB does not know.
  bool drain();
  /// Host-wide idle: every worker waiting (or none connected) and no runnable job for any group.
  bool allIdle() const noexcept;
  /// allIdle() as of the last poll() (computed at most every millisecond while busy, and on
  /// every poll that found nothing to do, i.e. before the loop sleeps).
  bool idle() const noexcept { return !m_busy; }
  /// Recomputes idle() now (stats must not show a state older than the last hand-out).
  void refreshIdle() { updateIdle(SteadyClock::now()); }
  bool drained();
  /// drained() without asking the database (for the HTTP side's snapshots, taken every 250 ms):
  /// the runnable check is that every group's last reservation found less than it asked for and
  /// nothing (a NOTIFY, a strand moving on) said jobs may exist since.
  bool drainedAsKnown() const;
  std::size_t clientCount() const noexcept { return m_clientCount; }
  /// A previous server on this host died (its socket was left behind): its workers may be
  /// reconnecting with jobs that held-lock batches claimed, which nothing in the database
  /// shows, so the start-up grace applies even without stale prefetch locks.
  void expectReconnects() noexcept { m_expectReconnects = true; }
  /// Hosts live on the database (heartbeats): held-lock claims only while at most
  /// held_max_hosts are (docs/server.md, "Claims start past the open batches").
  void setLiveHosts(int n) noexcept { m_liveHosts = n; }
  /// Database connectivity as last seen.
  bool databaseUp() const noexcept { return m_dbUp; }

  struct ClientView {
    std::string name;
    int pid;
    Transport transport;
    const char* state;
    std::uint64_t jobs_done;
    std::optional<JobId> current_job;  ///< the latest job it holds without a result
  };
  std::vector<ClientView> clients() const;
  std::size_t prefetchedCount() const noexcept;
  std::size_t pendingResults() const noexcept {
    std::size_t n = m_pendingComplete.size() + m_pendingFail.size() + m_inflight.completes.size() +
                    m_inflight.fails.size();
    for (const auto& b : m_batches)
      n += b.completes.size() + b.fails.size() + b.closing_completes.size() + b.closing_fails.size();
    return n;
  }
  /// Held-lock batches open or on their way (claim or close in flight).
  std::size_t batchesInUse() const noexcept;

 private:
  enum class ClientState { Idle, Waiting, Working };
  struct Client {
    bool live = false;
    std::string name;
    int pid = 0;
    Transport transport = Transport::Shm;
    std::size_t group = 0;
    ClientState state = ClientState::Idle;
    std::uint64_t request_seq = 0;
    std::uint16_t max_jobs = 1;  ///< of the request waiting
    SteadyClock::time_point requested_at{};
    bool ahead = false;  ///< the request waiting was sent ahead of need (its own hand-off histogram)
    std::vector<JobId> jobs;  ///< handed out, no result yet, in hand-out order
    std::optional<JobId> started;  ///< lastStarted(): the slot's mark when the connection closed
    std::uint64_t jobs_done = 0;
    /// Runs jobs: handed one, or holding some while it waits on a request sent ahead.
    bool working() const noexcept { return state == ClientState::Working || !jobs.empty(); }
    bool detached = false;    ///< no connection; holds its jobs for a reconnect
    bool reattached = false;  ///< reconnected; its first request settles the jobs it holds
  };
  /// What one client is told once a write commits.
  struct Acks {
    std::vector<JobId> jobs;
    std::vector<FailResult> failures;
  };
  struct PendingResult {
    ClientId client;
    JobResult result;
    std::string db_owner;
  };
  struct Prefetched {
    Job job;
    SteadyClock::time_point locked_at;
    int batch = -1;  ///< held-lock batch that claimed it; -1 = locked by m_prefetchOwner
  };
  /// A held-lock batch: the open transaction on channel i is m_batches[i].
  struct Batch {
    enum class State { Free, Opening, Open, Closing } state = State::Free;
    std::size_t group = 0;
    SteadyClock::time_point opened_at{};  ///< BEGIN submitted: the transaction's age
    std::size_t unhanded = 0;             ///< rows still in the group's prefetched list
    std::size_t outstanding = 0;          ///< handed out, no result yet
    std::size_t released = 0;             ///< unhanded rows the close in flight gives back
    std::vector<JobId> handed;
    std::vector<PendingResult> completes, fails;  ///< written by the close
    // What the close in flight carries:
    std::vector<PendingResult> closing_completes, closing_fails;
    std::vector<std::pair<JobId, std::string>> promoting;  ///< job, worker name
    /// The key of its claim's last row: rows up to it were claimed or skipped by this batch.
    std::optional<ReserveRequest::Key> last_key;
    bool bounded = false;  ///< its claim started past another open batch's last_key
  };
  struct Group {
    WorkerConfig config;
    std::deque<ClientId> waiting;  ///< FIFO
    std::vector<ClientId> reserving;  ///< named in the reservation in flight
    SteadyClock::time_point reserve_started{};
    /// Priority order; each locked by m_prefetchOwner or claimed by a held-lock batch.
    std::deque<Prefetched> prefetched;
    int workers = 0;                ///< registered clients of this config
    int batch = 0;                  ///< current reservation size (grows with backlog)
    bool exhausted = false;         ///< last reservation found less than asked
    SteadyClock::time_point exhausted_at{};
    /// Pipelining: jobs handed out since the last reservation came back, the rate they imply
    /// (EWMA) and that reservation's latency. The next reservation starts while the prefetch
    /// still covers one latency at that rate, so workers never wait for a round trip.
    std::uint64_t handed_since = 0;
    SteadyClock::time_point rate_since{};
    double rate_per_s = 0;
    std::chrono::nanoseconds reserve_latency{0};
    /// Held-lock claims that started past the open batches since the last one from the head of
    /// the queue (which finds rows given back below that key, and new jobs of higher priority).
    int bounded_claims = 0;
    /// Held-lock mode: singletons still take the written-lock claim, asked for separately.
    bool singletons_exhausted = false;
    SteadyClock::time_point singletons_at{};
  };

  std::size_t groupFor(const WorkerConfig& config);
  // The duty cycle's steps (poll).
  bool serveAll(SteadyClock::time_point now);
  bool flushIfDue(SteadyClock::time_point now);
  /// Reconnects the loop's connection when its back-off allows; false while it is still down.
  bool restoreDatabase(SteadyClock::time_point now);
  void repairInDoubtReservation();
  void handOut(Group& g, ClientId c, Job job, bool needs_transfer, int batch = -1);
  /// Pops the group's first prefetched job, with its bookkeeping (its batch's unhanded count,
  /// the hand-out rate).
  Prefetched takePrefetched(Group& g);
  /// The ledger's entry for a job handed to `c` (and its batch or transfer). false = already held.
  bool enterHandOut(ClientId c, const Job& job, bool needs_transfer, int batch, SteadyClock::time_point now);
  /// More of the group's prefetched jobs for `c`, behind its first one in m_handing: while the
  /// client asked for more, they fit its reply, and the group keeps a job for every worker.
  void addExtras(Group& g, ClientId c);
  bool serveGroup(std::size_t gi, SteadyClock::time_point now);
  bool reserveFor(std::size_t gi, SteadyClock::time_point now);
  bool collectReservation(SteadyClock::time_point now);
  /// After a claim came back (written or held): latency, hand-out rate, batch size, exhaustion.
  void noteClaim(Group& g, std::size_t got, std::size_t limit, SteadyClock::time_point started,
                 SteadyClock::time_point now);
  std::size_t lowWater(const Group& g) const noexcept;
  /// Rows the group's next claim asks for: its current batch (at least fetch_batch_size per
  /// worker), and never fewer than the workers waiting.
  int claimLimit(Group& g) noexcept;
  /// Held-lock mode: claim for group `gi` on a free channel.
  bool openBatchFor(std::size_t gi, SteadyClock::time_point now);
  /// Held-lock mode: the written-lock claim of the group's singletons.
  bool reserveSingletons(std::size_t gi, SteadyClock::time_point now);
  bool collectBatches(SteadyClock::time_point now);
  void applyOpen(int b, BatchOutcome& out, SteadyClock::time_point now);
  void applyClose(int b, BatchOutcome& out);
  /// The close failed: the batch's transaction is gone. Its results go to the writer against
  /// unlocked rows, its running jobs get their lock written by a transfer.
  void batchLost(int b, const std::string& why);
  /// The close that carried the promotion of `id` to `worker` is over: `written` when it
  /// committed; else (lost) the lock is written by a transfer from unlocked.
  void endPromotion(JobId id, const std::string& worker, bool written);
  bool closeDueBatches(SteadyClock::time_point now);
  void submitClose(int b);
  /// Marks the job reported; its result waits in its open batch, or in the writer's lists.
  void queueResult(PendingResult p);
  /// The writer's transfer of `id` committed (`applied`) or found the row otherwise locked.
  void finishTransfer(JobId id, bool applied);
  /// Held-lock batch channels exist (batches may be open, whatever claims are made now).
  bool heldMode() const noexcept { return !m_channels.empty(); }
  /// New claims are held-lock claims: channels exist and few enough hosts share the database.
  bool heldClaimsNow() noexcept;
  /// Hands the next batch to the writer if it is idle: results whose owner is known, lock
  /// transfers (unless `all_transfers`, only of jobs that outlived a flush cycle: a short job's
  /// result usually arrives first and folds the transfer away), unlocks.
  bool submitWrites(SteadyClock::time_point now, bool all_transfers);
  /// Results a commit made durable: counted, forgotten, their acks collected in `acks`.
  /// Returns whether one may have made another job runnable (a strand, a singleton).
  bool settle(const std::vector<PendingResult>& completes, const BatchResult& completed,
              const std::vector<PendingResult>& fails, const std::vector<FailResult>& failed,
              std::map<ClientId, Acks>& acks);
  /// Applies the writer's outcome: acks, stats, state.
  void applyWrites(WriteOutcome& out);
  /// Takes a finished outcome if there is one. Returns true if it applied one.
  bool collectWrites();
  bool releaseStalePrefetch(SteadyClock::time_point now);
  bool releasePrefetched(Group& g);
  void periodicPurge(SteadyClock::time_point now);
  /// Runs a store call, classifying failures: true on success; false after a connection or
  /// retryable error (logged; the caller keeps its state and tries again later).
  bool guarded(const char* what, const std::function<void()>& fn);
  void noteDbDown();
  void dropFromWaiting(ClientId c);
  /// A result or a running job reported for a row this server does not hold (after a restart).
  void queueAdoption(JobId job, const std::string& worker);
  void queueUnlock(JobId id, const std::string& owner);
  bool startupRelease(SteadyClock::time_point now);
  void updateIdle(SteadyClock::time_point now);

  Store& m_store;
  ResultWriter& m_writer;
  ReservationRunner& m_reservations;
  std::vector<std::string> m_reserveInDoubtNames;
  const ServerSettings m_settings;
  const std::string m_host;
  const std::string m_prefetchOwner;
  ReserverSink& m_sink;
  ServerStats& m_stats;
  std::vector<BatchChannel*> m_channels;
  std::vector<Batch> m_batches;  ///< one per channel
  int m_opening = -1;            ///< the batch whose claim is in flight (one at a time)
  /// Rows of open batches not yet handed out: a lost batch's rows may be claimed again by
  /// another of ours, and must not be handed out twice.
  std::unordered_set<JobId> m_heldPrefetched;

  int m_liveHosts = 1;
  bool m_heldClaims = true;  ///< what heldClaimsNow() said last (logged when it changes)
  std::vector<Client> m_clients;  ///< indexed by WorkerId (the registry reuses ids)
  std::vector<Job> m_handing;     ///< the jobs of the reply being built; reused
  std::size_t m_clientCount = 0;
  std::vector<Group> m_groups;
  std::size_t m_nextGroup = 0;  ///< round-robin start, so no group starves another
  JobLedger m_ledger;  ///< every job handed out or with a result to write
  std::vector<LockTransfer> m_pendingTransfers;
  std::vector<PendingResult> m_pendingComplete;
  std::vector<PendingResult> m_pendingFail;
  std::vector<OwnedJob> m_pendingUnlock;
  struct InFlight {
    std::vector<LockTransfer> transfers;
    std::vector<PendingResult> completes;
    std::vector<PendingResult> fails;
    std::vector<OwnedJob> unlocks;
  } m_inflight;
  SteadyClock::time_point m_firstPendingAt{};
  bool m_draining = false;
  bool m_dbUp = true;
  SteadyClock::time_point m_dbRetryAt{};
  std::chrono::milliseconds m_dbBackoff{50};
  SteadyClock::time_point m_nextPurge{};
  SteadyClock::time_point m_startedAt{};
  bool m_startupReleased = false;
  bool m_graceChecked = false;
  bool m_expectReconnects = false;
  bool m_reserveInDoubt = false;
  bool m_busy = false;
  SteadyClock::time_point m_nextIdleCheck{};
  /// Start of the last two result flushes: a job handed out before the earlier one has had a
  /// whole flush cycle (with the rings read in between) to report; only such jobs get a transfer.
  SteadyClock::time_point m_lastFlush{};
  SteadyClock::time_point m_prevFlush{};
  std::uint64_t m_flushFailures = 0;
};

}  // namespace hostq::server
