#include "cli/bench_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "common/json.hpp"

namespace hostq::cli::burndown {

namespace {

/// One reported figure of a T (a run, a host of a run).
template <class T>
struct FieldOf {
  const char* name;
  std::function<std::optional<double>(const T&)> get;
  int decimals;
};
using Field = FieldOf<RunResult>;

// Every scalar a run reports, in output order (JSON, CSV and the medians share this list).
const std::vector<Field>& fields() {
  static const std::vector<Field> f = {
      {"elapsed_s", [](const RunResult& r) { return std::optional<double>(r.elapsed_s); }, 3},
      {"jobs_per_second", [](const RunResult& r) { return std::optional<double>(r.jobs_per_second); }, 1},
      {"startup_ms", [](const RunResult& r) { return r.startup_ms; }, 1},
      {"db_statements", [](const RunResult& r) { return r.db_statements; }, 0},
      {"db_statements_per_job", [](const RunResult& r) { return r.db_statements_per_job; }, 5},
      {"xact_commit_delta", [](const RunResult& r) { return r.xact_commit_delta; }, 0},
      {"xact_commit_per_job", [](const RunResult& r) { return r.xact_commit_per_job; }, 5},
      {"cpu_server_us_per_job", [](const RunResult& r) { return r.cpu_server_us_per_job; }, 2},
      {"cpu_workers_us_per_job", [](const RunResult& r) { return r.cpu_workers_us_per_job; }, 2},
      {"cpu_postgres_us_per_job", [](const RunResult& r) { return r.cpu_postgres_us_per_job; }, 2},
      {"handoff_p50_us", [](const RunResult& r) { return r.handoff_p50_us; }, 2},
      {"handoff_p99_us", [](const RunResult& r) { return r.handoff_p99_us; }, 2},
      {"handoff_p999_us", [](const RunResult& r) { return r.handoff_p999_us; }, 2},
      {"handoff_count", [](const RunResult& r) { return r.handoff_count; }, 0},
      {"handoff_ahead_p50_us", [](const RunResult& r) { return r.handoff_ahead_p50_us; }, 2},
      {"handoff_ahead_p99_us", [](const RunResult& r) { return r.handoff_ahead_p99_us; }, 2},
      {"enqueue_to_start_p50_us", [](const RunResult& r) { return r.enqueue_to_start_p50_us; }, 0},
      {"enqueue_to_start_p99_us", [](const RunResult& r) { return r.enqueue_to_start_p99_us; }, 0},
      {"job_gap_p50_us", [](const RunResult& r) { return r.gap_p50_us; }, 2},
      {"job_gap_p99_us", [](const RunResult& r) { return r.gap_p99_us; }, 2},
      {"job_gap_p999_us", [](const RunResult& r) { return r.gap_p999_us; }, 2},
      {"server_peak_rss_kb", [](const RunResult& r) { return r.server_peak_rss_kb; }, 0},
      {"worker_peak_rss_kb", [](const RunResult& r) { return r.worker_peak_rss_kb; }, 0},
      {"reservations", [](const RunResult& r) { return r.reservations; }, 0},
      {"max_batch", [](const RunResult& r) { return r.max_batch; }, 0},
      {"load_1m", [](const RunResult& r) { return std::optional<double>(r.load_1m); }, 2},
  };
  return f;
}

// Added after the first release of the output: JSON keys and CSV columns after
// db_statements_source, so readers of the older layout keep their positions.
const std::vector<Field>& laterFields() {
  static const std::vector<Field> f = {
      {"fairness_min_jobs", [](const RunResult& r) { return r.fairness_min_jobs; }, 0},
      {"fairness_max_jobs", [](const RunResult& r) { return r.fairness_max_jobs; }, 0},
      {"fairness_worst_gap_ratio", [](const RunResult& r) { return r.fairness_worst_gap_ratio; }, 3},
      {"workers_served", [](const RunResult& r) { return r.workers_served; }, 0},
      {"enqueue_to_start_p999_us", [](const RunResult& r) { return r.enqueue_to_start_p999_us; }, 0},
      {"held_batches", [](const RunResult& r) { return r.held_batches; }, 0},
      {"held_open_ms_p50", [](const RunResult& r) { return r.held_open_ms_p50; }, 2},
      {"held_open_ms_p99", [](const RunResult& r) { return r.held_open_ms_p99; }, 2},
      {"held_jobs_per_batch", [](const RunResult& r) { return r.held_jobs_per_batch; }, 1},
      {"held_promotions", [](const RunResult& r) { return r.held_promotions; }, 0},
      {"hosts", [](const RunResult& r) { return std::optional<double>(r.config.hosts); }, 0},
      {"db_connections_peak", [](const RunResult& r) { return r.db_connections_peak; }, 0},
  };
  return f;
}

// The per-host figures (JSON "per_host", hosts.csv), in output order.
using HostField = FieldOf<HostResult>;
const std::vector<HostField>& hostFields() {
  static const std::vector<HostField> f = {
      {"jobs", [](const HostResult& h) { return h.jobs; }, 0},
      {"jobs_per_sec", [](const HostResult& h) { return h.jobs_per_second; }, 1},
      {"db_connections_peak", [](const HostResult& h) { return h.db_connections_peak; }, 0},
      {"db_statements", [](const HostResult& h) { return h.db_statements; }, 0},
      {"statements_per_job", [](const HostResult& h) { return h.db_statements_per_job; }, 5},
      {"cpu_server_us_per_job", [](const HostResult& h) { return h.cpu_server_us_per_job; }, 2},
      {"cpu_workers_us_per_job", [](const HostResult& h) { return h.cpu_workers_us_per_job; }, 2},
      {"handoff_p50_us", [](const HostResult& h) { return h.handoff_p50_us; }, 2},
      {"handoff_p99_us", [](const HostResult& h) { return h.handoff_p99_us; }, 2},
  };
  return f;
}

std::string num(double v, int decimals) {
  std::string s = fmt::format("{:.{}f}", v, decimals);
  return s;
}

/// ",v1,v2,…" (empty cells for absent values), with at least 3 decimals.
template <class T>
void csvCells(std::string& o, const std::vector<FieldOf<T>>& list, const T& x) {
  for (const auto& f : list) {
    const auto v = f.get(x);
    o += ",";
    if (v && std::isfinite(*v)) o += num(*v, std::max(f.decimals, 3));
  }
}

Json jsonNum(const std::optional<double>& v, int decimals) {
  if (!v || !std::isfinite(*v)) return nullptr;
  // More digits than the table shows (JSON is for machines), but no binary noise past them.
  const double scale = std::pow(10.0, std::max(decimals, 3));
  return std::round(*v * scale) / scale;
}

std::optional<double> median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// "4", or "4 on 16 hosts": a farm size as the tables and the chart name it.
std::string farmSize(int hosts, int workers) {
  return hosts > 1 ? fmt::format("{} on {} hosts", workers, hosts) : std::to_string(workers);
}

int transportOrder(Transport t) { return t == Transport::Shm ? 0 : t == Transport::Socket ? 1 : 2; }

const char* transportColor(Transport t) {
  return t == Transport::Shm ? "#1f77b4" : t == Transport::Socket ? "#ff7f0e" : "#2ca02c";
}

std::string xmlEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

/// A "nice" tick step for an axis of [0, max] with about `ticks` ticks.
double niceStep(double max, int ticks) {
  if (max <= 0) return 1;
  const double raw = max / ticks;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

std::string shortNum(double v) {
  if (v >= 1e6) return num(v / 1e6, v >= 1e7 ? 0 : 1) + "M";
  if (v >= 1e3) return num(v / 1e3, v >= 1e4 ? 0 : 1) + "k";
  if (v >= 1 || v == 0) return num(v, 0);
  return num(v, 2);
}

}  // namespace

std::string fmtNum(const std::optional<double>& v, int decimals) {
  if (!v || !std::isfinite(*v)) return "–";
  if (decimals == 0 || std::fabs(*v) >= 10000) return thousands(*v);
  return num(*v, decimals);
}

std::string fmtFairness(const RunResult& r) {
  if (!r.fairness_worst_gap_ratio) return "–";
  const double ratio = *r.fairness_worst_gap_ratio;
  std::string o = std::isfinite(ratio) ? num(ratio, 2) : "∞";
  const int served = static_cast<int>(std::lround(r.workers_served.value_or(0)));
  if (served < r.config.workers) o += fmt::format(" ({}/{} served)", served, r.config.workers);
  return o;
}

std::string toJson(const RunResult& r) {
  Json o = Json::object();
  o["transport"] = toString(r.config.transport);
  o["workers"] = r.config.workers;
  o["jobs"] = r.config.jobs;
  o["payload_bytes"] = r.config.payload_bytes;
  o["handler"] = r.config.handlerName();
  o["repeat"] = r.repeat;
  for (const auto& f : fields()) o[f.name] = jsonNum(f.get(r), f.decimals);
  o["db_statements_source"] = r.db_statements_source.empty() ? Json(nullptr) : Json(r.db_statements_source);
  for (const auto& f : laterFields()) o[f.name] = jsonNum(f.get(r), f.decimals);
  o["hosts"] = r.config.hosts;
  Json hosts = Json::array();
  for (const auto& h : r.per_host) {
    Json item = Json::object();
    item["hostname"] = h.hostname;
    for (const auto& f : hostFields()) item[f.name] = jsonNum(f.get(h), f.decimals);
    hosts.push_back(std::move(item));
  }
  o["per_host"] = std::move(hosts);
  if (!r.error.empty()) o["error"] = r.error;
  return dumpJson(o);
}

std::string toCsv(const std::vector<RunResult>& runs) {
  std::string o = "transport,workers,jobs,payload_bytes,handler,repeat";
  for (const auto& f : fields()) o += std::string(",") + f.name;
  o += ",db_statements_source";
  for (const auto& f : laterFields()) o += std::string(",") + f.name;
  o += "\n";
  for (const auto& r : runs) {
    o += fmt::format("{},{},{},{},{},{}", toString(r.config.transport), r.config.workers, r.config.jobs,
                     r.config.payload_bytes, r.config.handlerName(), r.repeat);
    csvCells(o, fields(), r);
    o += "," + r.db_statements_source;
    csvCells(o, laterFields(), r);
    o += "\n";
  }
  return o;
}

std::string hostsCsv(const std::vector<RunResult>& runs) {
  std::string o = "transport,workers,hosts,repeat,hostname";
  for (const auto& f : hostFields()) o += std::string(",") + f.name;
  o += "\n";
  for (const auto& r : runs) {
    for (const auto& h : r.per_host) {
      o += fmt::format("{},{},{},{},{}", toString(r.config.transport), r.config.workers, r.config.hosts, r.repeat,
                       h.hostname);
      csvCells(o, hostFields(), h);
      o += "\n";
    }
  }
  return o;
}

std::string histogramsCsv(const std::vector<RunResult>& runs) {
  std::string o = "transport,workers,repeat,upper_us,count\n";
  for (const auto& r : runs) {
    for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
      const auto n = r.gap.buckets()[static_cast<std::size_t>(i)];
      if (n == 0) continue;
      o += fmt::format("{},{},{},{},{}\n", toString(r.config.transport), r.config.workers, r.repeat,
                       num(static_cast<double>(LatencyHistogram::bucketUpper(i)) / 1000.0, 3), n);
    }
  }
  return o;
}

std::vector<ConfigSummary> summarize(const std::vector<RunResult>& runs) {
  std::map<std::tuple<int, int, int>, ConfigSummary> by;
  for (const auto& r : runs) {
    if (!r.error.empty()) continue;  // a failed run has no figures to take the median of
    auto& s = by[{r.config.hosts, transportOrder(r.config.transport), r.config.workers}];
    s.config = r.config;
    s.runs.push_back(&r);
    s.gap.merge(r.gap);
  }
  std::vector<ConfigSummary> out;
  for (auto& [key, s] : by) {
    RunResult& m = s.median;
    m.config = s.config;
    m.db_statements_source = s.runs.front()->db_statements_source;
    auto med = [&](const std::function<std::optional<double>(const RunResult&)>& get) {
      std::vector<double> v;
      for (auto* r : s.runs)
        if (auto x = get(*r)) v.push_back(*x);
      return median(v);
    };
    m.elapsed_s = med([](const RunResult& r) { return std::optional<double>(r.elapsed_s); }).value_or(0);
    m.jobs_per_second = med([](const RunResult& r) { return std::optional<double>(r.jobs_per_second); }).value_or(0);
    m.load_1m = med([](const RunResult& r) { return std::optional<double>(r.load_1m); }).value_or(0);
    m.startup_ms = med([](const RunResult& r) { return r.startup_ms; });
    m.db_statements = med([](const RunResult& r) { return r.db_statements; });
    m.db_statements_per_job = med([](const RunResult& r) { return r.db_statements_per_job; });
    m.xact_commit_delta = med([](const RunResult& r) { return r.xact_commit_delta; });
    m.xact_commit_per_job = med([](const RunResult& r) { return r.xact_commit_per_job; });
    m.cpu_server_us_per_job = med([](const RunResult& r) { return r.cpu_server_us_per_job; });
    m.cpu_workers_us_per_job = med([](const RunResult& r) { return r.cpu_workers_us_per_job; });
    m.cpu_postgres_us_per_job = med([](const RunResult& r) { return r.cpu_postgres_us_per_job; });
    m.handoff_p50_us = med([](const RunResult& r) { return r.handoff_p50_us; });
    m.handoff_p99_us = med([](const RunResult& r) { return r.handoff_p99_us; });
    m.handoff_p999_us = med([](const RunResult& r) { return r.handoff_p999_us; });
    m.enqueue_to_start_p50_us = med([](const RunResult& r) { return r.enqueue_to_start_p50_us; });
    m.enqueue_to_start_p99_us = med([](const RunResult& r) { return r.enqueue_to_start_p99_us; });
    m.enqueue_to_start_p999_us = med([](const RunResult& r) { return r.enqueue_to_start_p999_us; });
    m.gap_p50_us = med([](const RunResult& r) { return r.gap_p50_us; });
    m.gap_p99_us = med([](const RunResult& r) { return r.gap_p99_us; });
    m.gap_p999_us = med([](const RunResult& r) { return r.gap_p999_us; });
    m.server_peak_rss_kb = med([](const RunResult& r) { return r.server_peak_rss_kb; });
    m.worker_peak_rss_kb = med([](const RunResult& r) { return r.worker_peak_rss_kb; });
    m.reservations = med([](const RunResult& r) { return r.reservations; });
    m.max_batch = med([](const RunResult& r) { return r.max_batch; });
    m.fairness_min_jobs = med([](const RunResult& r) { return r.fairness_min_jobs; });
    m.fairness_max_jobs = med([](const RunResult& r) { return r.fairness_max_jobs; });
    m.fairness_worst_gap_ratio = med([](const RunResult& r) { return r.fairness_worst_gap_ratio; });
    m.workers_served = med([](const RunResult& r) { return r.workers_served; });
    m.held_batches = med([](const RunResult& r) { return r.held_batches; });
    m.held_open_ms_p50 = med([](const RunResult& r) { return r.held_open_ms_p50; });
    m.held_open_ms_p99 = med([](const RunResult& r) { return r.held_open_ms_p99; });
    m.held_jobs_per_batch = med([](const RunResult& r) { return r.held_jobs_per_batch; });
    m.held_promotions = med([](const RunResult& r) { return r.held_promotions; });
    m.db_connections_peak = med([](const RunResult& r) { return r.db_connections_peak; });
    out.push_back(std::move(s));
  }
  return out;
}

std::string summaryTable(const std::vector<ConfigSummary>& s) {
  std::string o =
      "| transport | workers | hosts | runs | jobs/s | DB connections peak | stmts/job (hostq) | xact/job (pg_stat_database) | CPU µs/job server | "
      "CPU µs/job workers | CPU µs/job postgres | hand-off p50 / p99 / p99.9 µs (server) | job gap p50 / p99 / p99.9 µs "
      "(worker) | peak RSS server / worker MB | fairness: worst gap / mean | held batches: open ms p50 / p99, "
      "jobs/batch, promoted |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  auto mb = [](const std::optional<double>& kb) {
    return kb ? std::optional<double>(*kb / 1024.0) : std::nullopt;
  };
  for (const auto& c : s) {
    const auto& m = c.median;
    const std::string stm = fmtNum(m.db_statements_per_job, 4) +
                            (m.db_statements_source == "xact_commit" ? " (xact)" : "");
    const std::string held = m.held_batches && *m.held_batches > 0
                                 ? fmtNum(m.held_open_ms_p50, 1) + " / " + fmtNum(m.held_open_ms_p99, 1) + ", " +
                                       fmtNum(m.held_jobs_per_batch, 0) + ", " + fmtNum(m.held_promotions, 0)
                                 : std::string("–");
    o += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} / {} / {} | {} / {} | {} | {} |\n",
                     toString(c.config.transport), c.config.workers, c.config.hosts, c.runs.size(),
                     fmtNum(m.jobs_per_second, 0), fmtNum(m.db_connections_peak, 0), stm,
                     fmtNum(m.xact_commit_per_job, 4), fmtNum(m.cpu_server_us_per_job, 1),
                     fmtNum(m.cpu_workers_us_per_job, 1), fmtNum(m.cpu_postgres_us_per_job, 1),
                     fmtNum(m.handoff_p50_us, 1), fmtNum(m.handoff_p99_us, 1), fmtNum(m.handoff_p999_us, 1),
                     fmtNum(m.gap_p50_us, 1), fmtNum(m.gap_p99_us, 1), fmtNum(m.gap_p999_us, 1),
                     fmtNum(mb(m.server_peak_rss_kb), 1), fmtNum(mb(m.worker_peak_rss_kb), 1), fmtFairness(m),
                     held);
  }
  return o;
}

std::string ratioTable(const std::vector<ConfigSummary>& s) {
  std::map<std::pair<int, int>, std::map<Transport, const RunResult*>> byWorkers;
  for (const auto& c : s) byWorkers[{c.config.hosts, c.config.workers}][c.config.transport] = &c.median;
  std::string o;
  for (auto& [w, t] : byWorkers) {
    auto ratio = [&](Transport a, Transport b, bool stmts) -> std::string {
      if (!t.count(a) || !t.count(b)) return "–";
      const auto x = stmts ? t[b]->db_statements_per_job : std::optional<double>(t[a]->jobs_per_second);
      const auto y = stmts ? t[a]->db_statements_per_job : std::optional<double>(t[b]->jobs_per_second);
      if (!x || !y || *y <= 0) return "–";
      return num(*x / *y, *x / *y >= 100 ? 0 : 2) + "×";
    };
    if (o.empty())
      o = "| workers | jobs/s shm ÷ socket | jobs/s shm ÷ direct | jobs/s socket ÷ direct | stmts/job direct ÷ shm | "
          "stmts/job direct ÷ socket |\n|---:|---:|---:|---:|---:|---:|\n";
    o += fmt::format("| {} | {} | {} | {} | {} | {} |\n", farmSize(w.first, w.second), ratio(Transport::Shm, Transport::Socket, false),
                     ratio(Transport::Shm, Transport::Direct, false), ratio(Transport::Socket, Transport::Direct, false),
                     ratio(Transport::Shm, Transport::Direct, true), ratio(Transport::Socket, Transport::Direct, true));
  }
  return o;
}

std::string chartSvg(const std::vector<ConfigSummary>& s, const std::string& title) {
  constexpr double W = 960, H1 = 420, H2 = 420, L = 80, R = 220, T = 60, B = 50;
  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      W, H1 + H2, L, xmlEscape(title));

  // --- chart 1: jobs/s, bars = medians, dots = single runs -----------------------------------
  std::set<std::pair<int, int>> workerSet;  // (hosts, workers)
  std::set<int> transportSet;
  double maxRate = 0;
  for (const auto& c : s) {
    workerSet.insert({c.config.hosts, c.config.workers});
    transportSet.insert(transportOrder(c.config.transport));
    for (auto* r : c.runs) maxRate = std::max(maxRate, r->jobs_per_second);
  }
  const std::vector<std::pair<int, int>> workers(workerSet.begin(), workerSet.end());
  const std::vector<int> transports(transportSet.begin(), transportSet.end());
  const double step = niceStep(maxRate, 5);
  const double top = std::max(step, std::ceil(maxRate / step) * step);
  const double x0 = L, x1 = W - R, y0 = T + (H1 - T - B), y1 = T;
  auto yOf = [&](double v) { return y0 - (y0 - y1) * v / top; };
  o += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"13\">Jobs per second (bar: median; dots: each run)</text>\n", L, T - 14);
  for (double v = 0; v <= top + step / 2; v += step) {
    o += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", x0, yOf(v), x1, yOf(v));
    o += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", x0 - 6, yOf(v) + 4, shortNum(v));
  }
  const double groupW = workers.empty() ? 0 : (x1 - x0) / static_cast<double>(workers.size());
  const double barW = transports.empty() ? 0 : groupW * 0.7 / static_cast<double>(transports.size());
  for (std::size_t g = 0; g < workers.size(); ++g) {
    const double gx = x0 + groupW * static_cast<double>(g) + groupW * 0.15;
    o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{} worker{}</text>\n", gx + groupW * 0.35,
                     y0 + 18, farmSize(workers[g].first, workers[g].second),
                     workers[g].second == 1 && workers[g].first == 1 ? "" : "s");
    for (const auto& c : s) {
      if (c.config.workers != workers[g].second || c.config.hosts != workers[g].first) continue;
      const auto ti = static_cast<double>(std::find(transports.begin(), transports.end(), transportOrder(c.config.transport)) -
                                          transports.begin());
      const double bx = gx + barW * ti;
      const double v = c.median.jobs_per_second;
      o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", bx + 2, yOf(v),
                       barW - 4, y0 - yOf(v), transportColor(c.config.transport));
      double highest = v;
      for (auto* r : c.runs) highest = std::max(highest, r->jobs_per_second);
      o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n", bx + barW / 2,
                       yOf(highest) - 7, shortNum(v));
      for (auto* r : c.runs)
        o += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"black\" fill-opacity=\"0.6\"/>\n",
                         bx + barW / 2, yOf(r->jobs_per_second));
    }
  }
  o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", x0, y0, x1);
  for (std::size_t i = 0; i < transports.size(); ++i) {
    const Transport t = transports[i] == 0 ? Transport::Shm : transports[i] == 1 ? Transport::Socket : Transport::Direct;
    const double ly = T + 20.0 * static_cast<double>(i);
    o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
                     x1 + 20, ly, transportColor(t), x1 + 40, ly + 12, toString(t));
  }

  // --- chart 2: worker-side hand-off histogram, one line per configuration --------------------
  const double top2 = H1 + T, bottom2 = H1 + H2 - B;
  double lo = 1e18, hi = 0, maxShare = 0;
  for (const auto& c : s) {
    const double n = static_cast<double>(c.gap.count());
    for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
      const auto k = c.gap.buckets()[static_cast<std::size_t>(i)];
      if (k == 0) continue;
      const double up = static_cast<double>(LatencyHistogram::bucketUpper(i)) / 1000.0;
      lo = std::min(lo, up);
      hi = std::max(hi, up);
      maxShare = std::max(maxShare, 100.0 * static_cast<double>(k) / n);
    }
  }
  o += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"13\">Hand-off latency seen by the worker: end of one job → start of the next "
      "(% of jobs per bucket, all runs)</text>\n",
      L, top2 - 14);
  if (hi > 0) {
    const double lx0 = std::pow(10.0, std::floor(std::log10(lo))), lx1 = std::pow(10.0, std::ceil(std::log10(hi)));
    auto xOf = [&](double us) { return x0 + (x1 - x0) * (std::log10(us) - std::log10(lx0)) / (std::log10(lx1) - std::log10(lx0)); };
    const double st = niceStep(maxShare, 5);
    const double topShare = std::max(st, std::ceil(maxShare / st) * st);
    auto yOf2 = [&](double share) { return bottom2 - (bottom2 - top2) * share / topShare; };
    for (double v = 0; v <= topShare + st / 2; v += st) {
      o += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", x0, yOf2(v), x1, yOf2(v));
      o += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}%</text>\n", x0 - 6, yOf2(v) + 4, num(v, st < 1 ? 1 : 0));
    }
    for (double d = lx0; d <= lx1 * 1.001; d *= 10) {
      const std::string label = d >= 1e6 ? num(d / 1e6, 0) + " s" : d >= 1e3 ? num(d / 1e3, 0) + " ms" : num(d, d < 1 ? 1 : 0) + " µs";
      o += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>\n", xOf(d), top2, bottom2);
      o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", xOf(d), bottom2 + 18, label);
    }
    o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", x0, bottom2, x1);
    const char* dashes[] = {"", "6,3", "2,2", "8,3,2,3"};
    std::map<Transport, int> seen;
    int legend = 0;
    for (const auto& c : s) {
      const double n = static_cast<double>(c.gap.count());
      if (n == 0) continue;
      const int dash = seen[c.config.transport]++ % 4;
      std::string pts;
      double prevX = xOf(lx0);
      for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
        const auto k = c.gap.buckets()[static_cast<std::size_t>(i)];
        const double up = static_cast<double>(LatencyHistogram::bucketUpper(i)) / 1000.0;
        if (up < lx0 || up > lx1 * 1.001) continue;
        const double x = xOf(up), y = yOf2(100.0 * static_cast<double>(k) / n);
        pts += fmt::format("{:.1f},{:.1f} {:.1f},{:.1f} ", prevX, y, x, y);
        prevX = x;
      }
      o += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"{}\"/>\n",
                       pts, transportColor(c.config.transport), dashes[dash]);
      const double ly = top2 + 20.0 * legend++;
      o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"/>"
                       "<text x=\"{}\" y=\"{}\">{} ×{}, p50 {} µs</text>\n",
                       x1 + 10, ly + 7, x1 + 36, ly + 7, transportColor(c.config.transport), dashes[dash], x1 + 42, ly + 11,
                       toString(c.config.transport), farmSize(c.config.hosts, c.config.workers),
                       fmtNum(percentileUs(c.gap, 0.5), 1));
    }
  } else {
    o += fmt::format("<text x=\"{}\" y=\"{}\">no hand-offs recorded</text>\n", L, top2 + 40);
  }
  o += "</svg>\n";
  return o;
}

}  // namespace hostq::cli::burndown
