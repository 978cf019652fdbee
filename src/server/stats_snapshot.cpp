#include "server/stats_snapshot.hpp"

namespace hostq::server {

namespace {

Json percentiles(const LatencyHistogram& h) {
  Json o = Json::object();
  o["count"] = h.count();
  o["p50_us"] = static_cast<double>(h.percentile(0.50)) / 1000.0;
  o["p99_us"] = static_cast<double>(h.percentile(0.99)) / 1000.0;
  o["p999_us"] = static_cast<double>(h.percentile(0.999)) / 1000.0;
  return o;
}

}  // namespace

Json statsJson(const StatsSnapshot& snap) {
  Json w = Json::object();
  w["server_pid"] = snap.server_pid;
  w["host"] = snap.host;
  w["generation"] = snap.generation;
  w["http"] = snap.http.empty() ? Json(nullptr) : Json(snap.http);
  Json workers = Json::array();
  std::uint64_t waiting = 0, working = 0, by_shm = 0, by_socket = 0;
  for (const auto& c : snap.workers) {
    Json item = Json::object();
    item["name"] = c.name;
    item["pid"] = c.pid;
    item["transport"] = toString(c.transport);
    item["state"] = c.state;
    item["jobs"] = c.jobs;
    item["current_job"] = c.current_job ? Json(*c.current_job) : Json(nullptr);
    workers.push_back(std::move(item));
    waiting += c.state == "waiting";
    working += c.state == "working";
    (c.transport == Transport::Shm ? by_shm : by_socket)++;
  }
  w["workers"] = std::move(workers);
  w["workers_shm"] = by_shm;
  w["workers_socket"] = by_socket;
  w["workers_waiting"] = waiting;
  w["workers_working"] = working;
  const auto& s = snap.stats;
  w["idle"] = snap.idle;
  w["drained"] = snap.drained;
  w["database_up"] = snap.database_up;
  w["jobs_handed_out"] = s.jobs_handed_out;
  w["handed_out_shm"] = s.handed_out_shm;
  w["handed_out_socket"] = s.handed_out_socket;
  w["handed_from_prefetch"] = s.handed_from_prefetch;
  w["jobs_completed"] = s.jobs_completed;
  w["jobs_failed"] = s.jobs_failed;
  w["jobs_rescheduled_died"] = s.jobs_rescheduled_died;
  w["jobs_given_back"] = s.jobs_given_back;
  w["extra_jobs_handed_out"] = s.extra_jobs_handed_out;
  w["extra_reply_records"] = s.extra_reply_records;
  w["jobs_unlocked"] = s.jobs_unlocked;
  w["prefetched"] = snap.prefetched;
  w["results_pending"] = snap.results_pending;
  w["reservations"] = s.reservations;
  w["reserved_rows"] = s.reserved_rows;
  w["empty_reservations"] = s.empty_reservations;
  w["max_batch"] = s.max_batch_seen;
  w["transfer_mismatches"] = s.transfer_mismatches;
  w["result_mismatches"] = s.result_mismatches;
  w["db_statements"] = s.statements.total();
  Json kinds = Json::object();
  kinds["reserve"] = s.statements.reserve;
  kinds["transfer"] = s.statements.transfer;
  kinds["complete"] = s.statements.complete;
  kinds["fail"] = s.statements.fail;
  kinds["unlock"] = s.statements.unlock;
  kinds["maintenance"] = s.statements.maintenance;
  kinds["claim"] = s.statements.claim;
  kinds["close"] = s.statements.close;
  w["db_statements_by_kind"] = std::move(kinds);
  const std::uint64_t done = s.jobs_completed + s.jobs_failed;
  w["db_statements_per_job"] =
      done ? static_cast<double>(s.statements.total()) / static_cast<double>(done) : 0.0;
  w["db_errors"] = s.db_errors;
  w["db_reconnects"] = s.db_reconnects;
  w["notifications"] = s.notifications;
  w["workers_dropped"] = s.workers_dropped;
  w["idle_transitions"] = s.idle_transitions;
  w["handoff"] = percentiles(s.handoff);
  w["handoff_ahead"] = percentiles(s.handoff_ahead);
  w["db_statement"] = percentiles(s.db_statement);
  w["db_busy_ms"] = static_cast<double>(s.db_busy_ns) / 1e6;
  w["enqueue_to_start"] = percentiles(s.enqueue_to_start);
  Json batch = Json::object();
  batch["count"] = s.batch_sizes.count();
  batch["p50"] = s.batch_sizes.percentile(0.5);
  batch["max"] = s.max_batch_seen;
  w["batch_rows"] = std::move(batch);
  Json held = Json::object();
  held["channels"] = snap.held_channels;
  held["in_use"] = snap.held_in_use;
  held["opened"] = s.held_batches_opened;
  held["closed"] = s.held_batches_closed;
  held["lost"] = s.held_batches_lost;
  held["lost_jobs"] = s.held_lost_jobs;
  held["promotions"] = s.held_promotions;
  held["released"] = s.held_released;
  held["collisions"] = s.held_collisions;
  held["claims_now"] = s.held_claims_now;
  held["live_hosts"] = s.live_hosts;
  held["mode_changes"] = s.claim_mode_changes;
  held["open_ms_p50"] = static_cast<double>(s.held_open_time.percentile(0.5)) / 1e6;
  held["open_ms_p99"] = static_cast<double>(s.held_open_time.percentile(0.99)) / 1e6;
  held["open_ms_max"] = static_cast<double>(s.held_open_time.percentile(1.0)) / 1e6;
  held["jobs_p50"] = s.held_batch_jobs.percentile(0.5);
  held["jobs_mean"] = s.held_batches_closed ? static_cast<double>(s.held_batch_jobs_sum) /
                                                  static_cast<double>(s.held_batches_closed)
                                            : 0.0;
  w["held_batches"] = std::move(held);
  return w;
}

}  // namespace hostq::server
