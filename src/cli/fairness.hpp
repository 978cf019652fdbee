#pragma once
// Fairness of a burn-down across the workers of a farm: from the jobs each worker did over the
// timed window, how much longer the least served worker waited between jobs than the farm's mean.
// Header-only (like json.hpp) so the unit test compiles it without linking the CLI.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/json.hpp"

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

namespace detail {

/// The end of the JSON string starting at `text[at] == '"'` (one past the closing quote), or npos.
inline std::size_t skipJsonString(std::string_view text, std::size_t at) {
  for (std::size_t i = at + 1; i < text.size(); ++i) {
    if (text[i] == '\\') ++i;
    else if (text[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

}  // namespace detail

/// The "jobs" of every item of the server stats' top-level "workers" array
/// (`{"name":…,"pid":…,"transport":…,"state":…,"jobs":…}`), items of the same pid summed (one
/// process, whatever its connections). nullopt when the array is missing or malformed.
inline std::optional<std::vector<std::uint64_t>> workerJobCounts(std::string_view stats_json) {
  // Find the key "workers" at the top level: skip strings, track depth.
  std::size_t pos = std::string_view::npos;
  int depth = 0;
  for (std::size_t i = 0; i < stats_json.size();) {
    const char c = stats_json[i];
    if (c == '"') {
      const std::size_t end = detail::skipJsonString(stats_json, i);
      if (end == std::string_view::npos) return std::nullopt;
      if (depth == 1 && stats_json.substr(i, end - i) == "\"workers\"") {
        std::size_t j = end;
        while (j < stats_json.size() && (stats_json[j] == ' ' || stats_json[j] == '\n')) ++j;
        if (j < stats_json.size() && stats_json[j] == ':') {
          pos = j + 1;
          break;
        }
      }
      i = end;
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    ++i;
  }
  if (pos == std::string_view::npos) return std::nullopt;
  while (pos < stats_json.size() && stats_json[pos] == ' ') ++pos;
  if (pos >= stats_json.size() || stats_json[pos] != '[') return std::nullopt;
  ++pos;

  std::vector<std::uint64_t> counts;
  std::map<std::int64_t, std::size_t> byPid;  // pid → index into counts
  for (;;) {
    while (pos < stats_json.size() && (stats_json[pos] == ' ' || stats_json[pos] == ',' || stats_json[pos] == '\n')) ++pos;
    if (pos >= stats_json.size()) return std::nullopt;
    if (stats_json[pos] == ']') break;
    if (stats_json[pos] != '{') return std::nullopt;
    // The item is a flat object: its end is the first '}' outside a string.
    std::size_t end = pos + 1;
    while (end < stats_json.size() && stats_json[end] != '}') {
      if (stats_json[end] == '"') {
        end = detail::skipJsonString(stats_json, end);
        if (end == std::string_view::npos) return std::nullopt;
      } else {
        ++end;
      }
    }
    if (end >= stats_json.size()) return std::nullopt;
    std::optional<std::int64_t> jobs, pid;
    try {
      for (const auto& [key, value] : json::parseObject(stats_json.substr(pos, end + 1 - pos))) {
        if (key == "jobs") jobs = value.asInteger();
        else if (key == "pid") pid = value.asInteger();
      }
    } catch (const json::ParseError&) {
      return std::nullopt;
    }
    if (!jobs || *jobs < 0) return std::nullopt;
    const auto n = static_cast<std::uint64_t>(*jobs);
    if (pid) {
      if (auto it = byPid.find(*pid); it != byPid.end()) {
        counts[it->second] += n;
      } else {
        byPid.emplace(*pid, counts.size());
        counts.push_back(n);
      }
    } else {
      counts.push_back(n);
    }
    pos = end + 1;
  }
  return counts;
}

}  // namespace hostq::cli::burndown
