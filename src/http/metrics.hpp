#pragma once
// What the HTTP endpoint serves besides the page: the Prometheus text exposition, the health
// verdict, and the dashboard's data. Pure functions of a stats snapshot and the probe's state,
// so they are rendered on the HTTP side without touching the server's loop.
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "common/json.hpp"
#include "http/db_probe.hpp"
#include "server/stats_snapshot.hpp"

namespace hostq::http {

/// One point of the jobs/s chart: the cumulative counters at a time.
struct Sample {
  std::int64_t unix_ms = 0;
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
};

struct Health {
  bool ok = false;
  std::string reason;  ///< why not, for people (and load-balancer logs)
};

/// `snapshot` may be null (the loop has not published yet). A snapshot older than `stale_after`
/// means the loop is stuck, a last good ping older than it a database that hangs: unhealthy,
/// like an unreachable database.
Health evaluateHealth(const server::StatsSnapshot* snapshot, const DbProbe::State& db,
                      std::chrono::steady_clock::time_point now, std::chrono::milliseconds stale_after);

/// Prometheus text format 0.0.4.
std::string renderMetrics(const server::StatsSnapshot* snapshot, const DbProbe::State& db,
                          std::chrono::steady_clock::time_point now);

/// Everything the dashboard shows, in one object (see docs/observability.md).
Json dashboardJson(const server::StatsSnapshot* snapshot, const DbProbe::State& db, const Health& health,
                   const std::deque<Sample>& history, std::chrono::steady_clock::time_point now);

/// Cumulative counts of `h` at each upper bound (inclusive, in the histogram's unit). A recorded
/// value counts under a bound only when its whole internal bucket lies below it, so the counts
/// never claim a value was faster than it was.
std::vector<std::uint64_t> cumulativeCounts(const LatencyHistogram& h, const std::vector<std::uint64_t>& bounds);

}  // namespace hostq::http
