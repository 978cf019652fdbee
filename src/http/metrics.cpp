#include "http/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "store/queue_count_json.hpp"

namespace hostq::http {

namespace {

// Latency bounds in nanoseconds: 1 µs .. 5 min, roughly 1-2.5-5 per decade.
const std::vector<std::uint64_t>& latencyBoundsNs() {
  static const std::vector<std::uint64_t> b = {
      1'000,         2'500,         5'000,          10'000,         25'000,         50'000,        100'000,
      250'000,       500'000,       1'000'000,      2'500'000,      5'000'000,      10'000'000,    25'000'000,
      50'000'000,    100'000'000,   250'000'000,    500'000'000,    1'000'000'000,  2'500'000'000, 5'000'000'000,
      10'000'000'000, 30'000'000'000, 60'000'000'000, 300'000'000'000};
  return b;
}

const std::vector<std::uint64_t>& batchBounds() {
  static const std::vector<std::uint64_t> b = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
  return b;
}

std::string escapeLabel(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string num(double v) { return fmt::format("{}", v); }

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    m_out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    m_out += name;
    if (!labels.empty()) m_out += fmt::format("{{{}}}", labels);
    m_out += ' ';
    m_out += num(value);
    m_out += '\n';
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    m_out += name;
    if (!labels.empty()) m_out += fmt::format("{{{}}}", labels);
    m_out += fmt::format(" {}\n", value);
  }
  void counter(std::string_view name, std::string_view help, std::uint64_t value) {
    family(name, "counter", help);
    sample(name, "", value);
  }
  void gauge(std::string_view name, std::string_view help, double value) {
    family(name, "gauge", help);
    sample(name, "", value);
  }
  /// `per_unit`: the histogram's units per unit of the metric (ns per s: 1e9). A division by an
  /// exact power of ten, so the bounds print as written ("1e-06", not "1.0000000000000002e-06").
  void histogram(std::string_view name, std::string_view help, const LatencyHistogram& h,
                 const std::vector<std::uint64_t>& bounds, double per_unit) {
    family(name, "histogram", help);
    const auto cum = cumulativeCounts(h, bounds);
    const std::string bucket = std::string(name) + "_bucket";
    for (std::size_t i = 0; i < bounds.size(); ++i)
      sample(bucket, fmt::format("le=\"{}\"", num(static_cast<double>(bounds[i]) / per_unit)), cum[i]);
    sample(bucket, "le=\"+Inf\"", h.count());
    sample(std::string(name) + "_sum", "", static_cast<double>(h.sum()) / per_unit);
    sample(std::string(name) + "_count", "", h.count());
  }
  std::string take() { return std::move(m_out); }

 private:
  std::string m_out;
};

Json histogramJson(const LatencyHistogram& h, const std::vector<std::uint64_t>& bounds, double per_unit) {
  const auto cum = cumulativeCounts(h, bounds);
  Json le = Json::array(), counts = Json::array();
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    le.push_back(static_cast<double>(bounds[i]) / per_unit);
    counts.push_back(cum[i] - below);
    below = cum[i];
  }
  le.push_back(nullptr);  // +Inf
  counts.push_back(h.count() - below);
  Json o = Json::object();
  o["le"] = std::move(le);
  o["counts"] = std::move(counts);
  o["count"] = h.count();
  return o;
}

}  // namespace

std::vector<std::uint64_t> cumulativeCounts(const LatencyHistogram& h, const std::vector<std::uint64_t>& bounds) {
  std::vector<std::uint64_t> out(bounds.size(), 0);
  const auto& buckets = h.buckets();
  std::size_t b = 0;
  std::uint64_t seen = 0;
  for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
    const std::uint64_t upper = LatencyHistogram::bucketUpper(i);
    while (b < bounds.size() && upper > bounds[b]) out[b++] = seen;
    if (b == bounds.size()) break;
    seen += buckets[static_cast<std::size_t>(i)];
  }
  for (; b < bounds.size(); ++b) out[b] = seen;
  return out;
}

Health evaluateHealth(const server::StatsSnapshot* snapshot, const DbProbe::State& db,
                      std::chrono::steady_clock::time_point now, std::chrono::milliseconds stale_after) {
  if (!snapshot) return {false, "server starting: no stats published yet"};
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - snapshot->taken_at);
  if (age > stale_after)
    return {false, fmt::format("server loop has not published stats for {} ms", age.count())};
  if (db.checked && !db.reachable) return {false, "database unreachable: " + db.error};
  if (db.checked && now - db.last_ok > stale_after)
    return {false, fmt::format("database has not answered a ping for {} ms",
                               std::chrono::duration_cast<std::chrono::milliseconds>(now - db.last_ok).count())};
  if (!snapshot->database_up) return {false, "the server's database connection is down"};
  return {true, "ok"};
}

std::string renderMetrics(const server::StatsSnapshot* snapshot, const DbProbe::State& db,
                          std::chrono::steady_clock::time_point now) {
  Exposition e;
  e.gauge("hostq_database_reachable", "1 while the HTTP side's own database connection answers, else 0",
          db.checked && db.reachable ? 1 : 0);
  if (snapshot) {
    const auto& s = snapshot->stats;
    e.gauge("hostq_server_up", "1 while the server's loop publishes stats", 1);
    e.gauge("hostq_server_database_up", "1 while the server's own database connections work", snapshot->database_up ? 1 : 0);
    e.gauge("hostq_idle", "1 while nothing is runnable, prefetched or held by a worker", snapshot->idle ? 1 : 0);
    e.counter("hostq_jobs_completed_total", "jobs whose completion the server wrote", s.jobs_completed);
    e.counter("hostq_jobs_failed_total", "jobs whose failure the server wrote (retried or permanent)", s.jobs_failed);
    e.family("hostq_jobs_handed_out_total", "counter", "jobs handed to a worker, by transport");
    e.sample("hostq_jobs_handed_out_total", "transport=\"shm\"", s.handed_out_shm);
    e.sample("hostq_jobs_handed_out_total", "transport=\"socket\"", s.handed_out_socket);
    e.counter("hostq_jobs_rescheduled_died_total", "jobs rescheduled because their worker died", s.jobs_rescheduled_died);
    e.counter("hostq_jobs_given_back_total", "jobs a departed worker held without having begun them, given back without an attempt", s.jobs_given_back);
    e.counter("hostq_extra_jobs_handed_out_total", "jobs handed out behind the first of a reply of several", s.extra_jobs_handed_out);
    e.counter("hostq_extra_reply_records_total", "ring records after the first of a reply of several jobs", s.extra_reply_records);
    e.counter("hostq_jobs_unlocked_total", "prefetched jobs given back to the database", s.jobs_unlocked);
    std::uint64_t shm = 0, socket = 0, idle = 0, waiting = 0, working = 0;
    for (const auto& w : snapshot->workers) {
      (w.transport == Transport::Shm ? shm : socket)++;
      if (w.state == "waiting") ++waiting;
      else if (w.state == "working") ++working;
      else ++idle;
    }
    e.family("hostq_workers", "gauge", "registered workers, by transport");
    e.sample("hostq_workers", "transport=\"shm\"", shm);
    e.sample("hostq_workers", "transport=\"socket\"", socket);
    e.family("hostq_workers_by_state", "gauge", "registered workers, by state");
    e.sample("hostq_workers_by_state", "state=\"idle\"", idle);
    e.sample("hostq_workers_by_state", "state=\"waiting\"", waiting);
    e.sample("hostq_workers_by_state", "state=\"working\"", working);
    e.gauge("hostq_prefetched_jobs", "jobs reserved by the server and not yet handed out",
            static_cast<double>(snapshot->prefetched));
    e.gauge("hostq_results_pending", "results reported by workers and not yet written",
            static_cast<double>(snapshot->results_pending));
    e.counter("hostq_reservations_total", "reservation statements run", s.reservations);
    e.counter("hostq_reserved_rows_total", "jobs reserved by those statements", s.reserved_rows);
    e.counter("hostq_empty_reservations_total", "reservations that found nothing", s.empty_reservations);
    e.family("hostq_db_statements_total", "counter", "database statements of the server, by kind");
    const std::pair<const char*, std::uint64_t> kinds[] = {
        {"reserve", s.statements.reserve}, {"transfer", s.statements.transfer}, {"complete", s.statements.complete},
        {"fail", s.statements.fail},       {"unlock", s.statements.unlock},     {"maintenance", s.statements.maintenance},
        {"claim", s.statements.claim},     {"close", s.statements.close}};
    for (const auto& [kind, n] : kinds) e.sample("hostq_db_statements_total", fmt::format("kind=\"{}\"", kind), n);
    e.counter("hostq_db_errors_total", "database errors the server saw", s.db_errors);
    e.counter("hostq_db_reconnects_total", "reconnections of the server's database connections", s.db_reconnects);
    e.counter("hostq_notifications_total", "LISTEN notifications received", s.notifications);
    e.counter("hostq_workers_dropped_total", "workers dropped for a protocol error", s.workers_dropped);
    e.histogram("hostq_handoff_seconds", "a waiting worker's request to the first job delivered to it (one per request)", s.handoff,
                latencyBoundsNs(), 1e9);
    e.histogram("hostq_handoff_ahead_seconds", "a request sent ahead, while the worker still runs jobs, to its first job delivered",
                s.handoff_ahead, latencyBoundsNs(), 1e9);
    e.histogram("hostq_enqueue_to_start_seconds", "a job's created_at to its hand-off to a worker",
                s.enqueue_to_start, latencyBoundsNs(), 1e9);
    e.histogram("hostq_db_statement_seconds", "wall time of each database round trip of the server", s.db_statement,
                latencyBoundsNs(), 1e9);
    e.histogram("hostq_reservation_batch_rows", "jobs per reservation", s.batch_sizes, batchBounds(), 1.0);
    e.counter("hostq_held_batches_total", "held-lock batches closed (claims that wrote nothing)", s.held_batches_closed);
    e.counter("hostq_held_batches_lost_total", "held-lock batches whose transaction was lost before its close",
              s.held_batches_lost);
    e.counter("hostq_held_promotions_total", "jobs still running at their batch's bound, given a written lock",
              s.held_promotions);
    e.counter("hostq_held_released_total", "claimed rows given back unrun by a batch's COMMIT", s.held_released);
    e.gauge("hostq_held_batches_in_use", "held-lock batches open or with a claim or close in flight",
            static_cast<double>(snapshot->held_in_use));
    e.histogram("hostq_held_batch_open_seconds", "a held-lock batch's BEGIN to its close applied", s.held_open_time,
                latencyBoundsNs(), 1e9);
  } else {
    e.gauge("hostq_server_up", "1 while the server's loop publishes stats", 0);
  }
  if (db.have_counts) {
    e.family("hostq_jobs", "gauge", "jobs in the database by queue and state (refreshed on a schedule)");
    for (const auto& c : db.counts) {
      const std::string q = escapeLabel(c.queue);
      const std::pair<const char*, std::int64_t> states[] = {
          {"queued", c.queued},         {"future", c.future}, {"blocked", c.blocked}, {"running", c.running},
          {"prefetched", c.prefetched}, {"held", c.on_hold},  {"failed", c.failed}};
      for (const auto& [state, n] : states)
        e.sample("hostq_jobs", fmt::format("queue=\"{}\",state=\"{}\"", q, state), static_cast<double>(n));
    }
    e.gauge("hostq_jobs_age_seconds", "age of the hostq_jobs figures",
            std::chrono::duration<double>(now - db.counts_at).count());
  }
  return e.take();
}

Json dashboardJson(const server::StatsSnapshot* snapshot, const DbProbe::State& db, const Health& health,
                   const std::deque<Sample>& history, std::chrono::steady_clock::time_point now) {
  Json o = Json::object();
  o["stats"] = snapshot ? server::statsJson(*snapshot) : Json(nullptr);
  Json h = Json::object();
  h["ok"] = health.ok;
  h["reason"] = health.reason;
  o["health"] = std::move(h);
  Json queues = Json::array();
  for (const auto& c : db.counts) queues.push_back(queueCountJson(c));
  o["queues"] = std::move(queues);
  o["queues_age_s"] = db.have_counts ? Json(std::chrono::duration<double>(now - db.counts_at).count()) : Json(nullptr);
  Json hist = Json::array();
  for (const auto& s : history) hist.push_back(Json::array({s.unix_ms, s.completed, s.failed}));
  o["history"] = std::move(hist);
  Json histograms = Json::object();
  if (snapshot) {
    histograms["handoff_us"] = histogramJson(snapshot->stats.handoff, latencyBoundsNs(), 1e3);
    histograms["enqueue_to_start_us"] = histogramJson(snapshot->stats.enqueue_to_start, latencyBoundsNs(), 1e3);
    histograms["batch_rows"] = histogramJson(snapshot->stats.batch_sizes, batchBounds(), 1.0);
  }
  o["histograms"] = std::move(histograms);
  return o;
}

}  // namespace hostq::http
