#pragma once
// Fairness of a burn-down across the workers of a farm: from the jobs each worker did over the
// timed window, how much longer the least served worker waited between jobs than the farm's mean.
// Header-only so the unit test compiles it without linking the CLI.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.hpp"

namespace hostq::cli::burndown {

/// Figures of one run. With T the elapsed seconds, n_i the jobs of worker i, W workers and
/// N = Σ n_i: worker i's mean interval between jobs is T/n_i, the farm-wide mean interval per
/// worker is T·W/N, and the worst gap ratio is max_i (T/n_i)/(T·W/N) = (N/W)/min n_i.
struct Fairness {
  int workers = 0;         ///< W: the configured count, or more if the server listed more
  int workers_served = 0;  ///< workers with n_i > 0
  std::uint64_t jobs = 0;  ///< N
  std::uint64_t min_jobs = 0, max_jobs = 0;
  /// T·W/N; nullopt when N = 0.
  std::optional<double> mean_interval_s;
  /// T/min n_i; +∞ when a worker did no job, nullopt when N = 0.
  std::optional<double> worst_interval_s;
  /// worst_interval_s / mean_interval_s; +∞ when a worker did no job, nullopt when N = 0.
  std::optional<double> worst_gap_ratio;
};

/// `jobs_per_worker`: one entry per worker the server knew; workers it did not list (not
/// registered) count as 0 jobs, so `workers` below is max(workers, jobs_per_worker.size()).
inline Fairness computeFairness(double elapsed_s, int workers, const std::vector<std::uint64_t>& jobs_per_worker) {
  Fairness f;
  f.workers = std::max(workers, static_cast<int>(jobs_per_worker.size()));
  if (f.workers <= 0) return f;
  const bool missing = static_cast<int>(jobs_per_worker.size()) < f.workers;
  f.min_jobs = missing || jobs_per_worker.empty() ? 0 : *std::min_element(jobs_per_worker.begin(), jobs_per_worker.end());
  for (const auto n : jobs_per_worker) {
    f.jobs += n;
    f.max_jobs = std::max(f.max_jobs, n);
    f.workers_served += n > 0;
  }
  if (f.jobs == 0) return f;
  const double w = static_cast<double>(f.workers), n = static_cast<double>(f.jobs);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  f.mean_interval_s = elapsed_s * w / n;
  const double least = static_cast<double>(f.min_jobs);
  f.worst_interval_s = f.min_jobs == 0 ? kInf : elapsed_s / least;
  f.worst_gap_ratio = f.min_jobs == 0 ? kInf : (n / w) / least;
  return f;
}

/// The "jobs" of every item of the server stats' top-level "workers" array
/// (`{"name":…,"pid":…,"transport":…,"state":…,"jobs":…}`), items of the same pid summed (one
/// process, whatever its connections). nullopt when the array is missing or malformed.
inline std::optional<std::vector<std::uint64_t>> workerJobCounts(std::string_view stats_json) {
  const Json stats = Json::parse(stats_json.begin(), stats_json.end(), nullptr, false);
  if (!stats.is_object()) return std::nullopt;
  const auto workers = stats.find("workers");
  if (workers == stats.end() || !workers->is_array()) return std::nullopt;
  std::vector<std::uint64_t> counts;
  std::map<std::int64_t, std::size_t> byPid;  // pid → index into counts
  for (const auto& item : *workers) {
    if (!item.is_object()) return std::nullopt;
    const auto jobs = item.find("jobs");
    if (jobs == item.end() || !jobs->is_number_unsigned()) return std::nullopt;
    const auto n = jobs->get<std::uint64_t>();
    const auto pid = item.find("pid");
    if (pid != item.end() && pid->is_number_integer()) {
      if (auto it = byPid.find(pid->get<std::int64_t>()); it != byPid.end()) {
        counts[it->second] += n;
      } else {
        byPid.emplace(pid->get<std::int64_t>(), counts.size());
        counts.push_back(n);
      }
    } else {
      counts.push_back(n);
    }
  }
  return counts;
}

}  // namespace hostq::cli::burndown
