#pragma once
// Output of burn-down results: JSON lines, CSV, markdown tables, the SVG chart.
#include <optional>
#include <string>
#include <vector>

#include "cli/burndown.hpp"

namespace hostq::cli::burndown {

/// One JSON object (one line) with every field of a run; absent values are null.
std::string toJson(const RunResult& r);
/// Header + one line per run.
std::string toCsv(const std::vector<RunResult>& runs);
/// The per-host figures of every run: transport,workers,hosts,repeat,hostname,jobs,… (one line
/// per simulated host).
std::string hostsCsv(const std::vector<RunResult>& runs);
/// Histogram buckets of every run: transport,workers,repeat,upper_us,count (non-empty buckets).
std::string histogramsCsv(const std::vector<RunResult>& runs);

/// The runs of one configuration, and the per-metric medians over them.
struct ConfigSummary {
  RunConfig config;
  std::vector<const RunResult*> runs;
  RunResult median;  ///< every scalar field: the median over `runs` of the runs that have it
  LatencyHistogram gap;  ///< merged over the runs
};
std::vector<ConfigSummary> summarize(const std::vector<RunResult>& runs);

/// Markdown table of the medians.
std::string summaryTable(const std::vector<ConfigSummary>& s);
/// Markdown table of jobs/s and statements-per-job ratios between transports, per worker count.
std::string ratioTable(const std::vector<ConfigSummary>& s);
/// Self-contained SVG: jobs/s by transport and worker count; hand-off latency histogram.
std::string chartSvg(const std::vector<ConfigSummary>& s, const std::string& title);

/// "12.3" / "–"
std::string fmtNum(const std::optional<double>& v, int decimals);
/// The worst gap ratio ("1.37", "∞ (250/256 served)", "–" when not measured).
std::string fmtFairness(const RunResult& r);

}  // namespace hostq::cli::burndown
