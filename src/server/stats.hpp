#pragma once
// Server statistics. Written only by the server's loop thread (no atomics on the hot path);
// stats requests are answered from that thread too.
#include <chrono>
#include <cstdint>
#include <string>

#include "common/latency_histogram.hpp"

namespace hostq::server {

/// Nanoseconds from `from` to `to` (0 if `to` is earlier): what the histograms record.
inline std::uint64_t nanosSince(std::chrono::steady_clock::time_point from,
                                std::chrono::steady_clock::time_point to) {
  return to > from ? static_cast<std::uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count())
                   : 0;
}

struct StatementCounts {
  std::uint64_t reserve = 0;
  std::uint64_t transfer = 0;
  std::uint64_t complete = 0;
  std::uint64_t fail = 0;
  std::uint64_t unlock = 0;
  std::uint64_t maintenance = 0;
  std::uint64_t claim = 0;  ///< held-lock batches: BEGIN + the claim
  std::uint64_t close = 0;  ///< held-lock batches: results, promotions, COMMIT
  std::uint64_t total() const noexcept {
    return reserve + transfer + complete + fail + unlock + maintenance + claim + close;
  }
};

struct ServerStats {
  std::uint64_t jobs_handed_out = 0;
  std::uint64_t handed_out_shm = 0;
  std::uint64_t handed_out_socket = 0;
  std::uint64_t handed_from_prefetch = 0;
  /// Jobs handed out behind the first of a reply of several (Reserve.max_jobs > 1).
  std::uint64_t extra_jobs_handed_out = 0;
  /// Ring records after the first of such replies (protocol 4): jobs that one record could not hold.
  std::uint64_t extra_reply_records = 0;
  std::uint64_t jobs_completed = 0;
  std::uint64_t jobs_failed = 0;
  std::uint64_t jobs_rescheduled_died = 0;
  /// Jobs a worker that went away held without having begun them: given back, no attempt.
  std::uint64_t jobs_given_back = 0;
  /// Switches between held-lock and written-lock claims as the number of live hosts crossed
  /// held_max_hosts.
  std::uint64_t claim_mode_changes = 0;
  std::uint64_t live_hosts = 1;     ///< as the last heartbeat saw them
  bool held_claims_now = false;     ///< the claim the server makes now is a held-lock claim
  std::uint64_t jobs_unlocked = 0;
  std::uint64_t transfer_mismatches = 0;
  std::uint64_t result_mismatches = 0;
  std::uint64_t reservations = 0;
  std::uint64_t reserved_rows = 0;
  std::uint64_t empty_reservations = 0;
  std::uint64_t max_batch_seen = 0;
  std::uint64_t db_errors = 0;
  std::uint64_t db_reconnects = 0;
  std::uint64_t notifications = 0;
  std::uint64_t workers_dropped = 0;
  std::uint64_t idle_transitions = 0;
  // Held-lock batches (docs/server.md).
  std::uint64_t held_batches_opened = 0;
  std::uint64_t held_batches_closed = 0;
  std::uint64_t held_batches_lost = 0;   ///< close failed: the transaction was gone
  std::uint64_t held_lost_jobs = 0;      ///< results and running jobs of lost batches (rerun risk)
  std::uint64_t held_promotions = 0;     ///< running at the close: lock written
  std::uint64_t held_released = 0;       ///< claimed, never handed out, given back by COMMIT
  std::uint64_t held_collisions = 0;     ///< claimed again while we still held it from a lost batch
  LatencyHistogram held_open_time;       ///< BEGIN submitted → close applied (ns)
  LatencyHistogram held_batch_jobs;      ///< jobs handed out per closed batch ("ns" = jobs)
  std::uint64_t held_batch_jobs_sum = 0;
  StatementCounts statements;
  LatencyHistogram handoff;           ///< request → job delivered (server side), for a worker waiting
  LatencyHistogram handoff_ahead;     ///< the same for requests sent ahead, while the worker still runs jobs
  LatencyHistogram enqueue_to_start;  ///< job created_at → delivered (database clock vs ours)
  LatencyHistogram batch_sizes;       ///< rows per reservation (recorded as "ns" = rows)
  LatencyHistogram db_statement;      ///< wall time of each database round trip
  std::uint64_t db_busy_ns = 0;       ///< the loop thread's time spent waiting on the database
};

}  // namespace hostq::server
