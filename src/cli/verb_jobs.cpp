// hostq jobs: list queued, running and failed jobs, or the counts per queue.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/times.hpp"
#include "cli/verbs.hpp"
#include "common/json.hpp"
#include "store/queue_count_json.hpp"

namespace hostq::cli {
namespace {

struct Options {
  std::string queue;
  bool failed = false;
  int limit = 100;
  bool json = false;
  bool counts = false;
};

// Left-aligned columns sized to their widest cell; the last column is not padded.
void printTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

// A table cell: one line, bounded, so one long error does not wreck the table.
std::string cell(const std::optional<std::string>& text, std::size_t max = 60) {
  if (!text) return "-";
  std::string out;
  for (char c : *text) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (out.size() > max) out = out.substr(0, max - 3) + "...";
  return out.empty() ? "-" : out;
}

std::string state(const Job& job, bool future) {
  if (job.locked_by) {
    if (*job.locked_by == kOnHold) return "held";
    if (job.locked_by->starts_with("prefetch:")) return "prefetched";
    return "running";
  }
  if (!job.next_in_strand) return "blocked";
  return future ? "future" : "queued";
}

std::optional<std::string> timeOrNull(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return formatTime(*t);
}

std::string toJson(const Job& job, const std::string& st) {
  auto opt = [](const auto& v) { return v ? Json(*v) : Json(nullptr); };
  Json w = Json::object();
  w["id"] = job.id;
  w["state"] = st;
  w["queue"] = job.queue;
  w["priority"] = job.priority;
  w["attempts"] = job.attempts;
  w["max_attempts"] = opt(job.max_attempts);
  w["tag"] = job.tag;
  w["payload"] = job.payload;
  w["run_at"] = formatTime(job.run_at);
  w["locked_by"] = opt(job.locked_by);
  w["locked_at"] = opt(timeOrNull(job.locked_at));
  w["strand"] = opt(job.strand);
  w["next_in_strand"] = job.next_in_strand;
  w["max_concurrent"] = job.max_concurrent;
  w["singleton"] = opt(job.singleton);
  w["expires_at"] = opt(timeOrNull(job.expires_at));
  w["source"] = opt(job.source);
  w["last_error"] = opt(job.last_error);
  w["created_at"] = formatTime(job.created_at);
  if (st == "failed") {
    w["failed_at"] = opt(timeOrNull(job.failed_at));
    w["original_job_id"] = opt(job.original_job_id);
    w["requeued_job_id"] = opt(job.requeued_job_id);
  }
  return dumpJson(w);
}

int listCounts(Store& store, const Options& o) {
  auto counts = store.counts();
  std::erase_if(counts, [&](const QueueCount& c) { return !o.queue.empty() && c.queue != o.queue; });
  if (o.json) {
    for (const auto& c : counts) {
      std::printf("%s\n", dumpJson(queueCountJson(c)).c_str());
    }
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"QUEUE", "QUEUED", "FUTURE", "BLOCKED", "RUNNING", "PREFETCHED", "HELD", "FAILED"}};
  for (const auto& c : counts) {
    rows.push_back({c.queue, std::to_string(c.queued), std::to_string(c.future), std::to_string(c.blocked),
                    std::to_string(c.running), std::to_string(c.prefetched), std::to_string(c.on_hold),
                    std::to_string(c.failed)});
  }
  printTable(rows);
  return 0;
}

int listFailed(Store& store, const Options& o) {
  const auto jobs = store.list(ListFlavor::Failed, o.queue, o.limit);
  if (o.json) {
    for (const auto& j : jobs) std::printf("%s\n", toJson(j, "failed").c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"ID", "ORIGINAL", "QUEUE", "PRI", "ATT", "FAILED_AT", "TAG", "REQUEUED", "LAST_ERROR"}};
  for (const auto& j : jobs) {
    rows.push_back({std::to_string(j.id), j.original_job_id ? std::to_string(*j.original_job_id) : "-", j.queue,
                    std::to_string(j.priority), std::to_string(j.attempts),
                    j.failed_at ? formatTime(*j.failed_at, false) : "-", cell(j.tag, 40),
                    j.requeued_job_id ? std::to_string(*j.requeued_job_id) : "-", cell(j.last_error)});
  }
  printTable(rows);
  return 0;
}

int listLive(Store& store, const Options& o) {
  // Two statements, so a job whose run_at passes in between may show twice or not at all; a
  // listing is a glance, not a snapshot.
  std::vector<std::pair<Job, std::string>> jobs;
  for (auto& j : store.list(ListFlavor::Current, o.queue, o.limit)) jobs.emplace_back(std::move(j), "");
  const std::size_t current = jobs.size();
  if (current < static_cast<std::size_t>(o.limit)) {
    for (auto& j : store.list(ListFlavor::Future, o.queue, o.limit - static_cast<int>(current))) {
      jobs.emplace_back(std::move(j), "");
    }
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i].second = state(jobs[i].first, i >= current);
  if (o.json) {
    for (const auto& [j, st] : jobs) std::printf("%s\n", toJson(j, st).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"ID", "QUEUE", "PRI", "STATE", "ATT", "RUN_AT", "TAG", "STRAND", "SINGLETON", "LOCKED_BY"}};
  for (const auto& [j, st] : jobs) {
    rows.push_back({std::to_string(j.id), j.queue, std::to_string(j.priority), st, std::to_string(j.attempts),
                    formatTime(j.run_at, false), cell(j.tag, 40), cell(j.strand, 40), cell(j.singleton, 40),
                    cell(j.locked_by, 40)});
  }
  printTable(rows);
  return 0;
}

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto o = std::make_shared<Options>();
  cmd.add_option("--queue", o->queue, "only this queue (default: all)");
  auto* failed = cmd.add_flag("--failed", o->failed, "list failed jobs (failed_jobs) instead");
  auto* limit = cmd.add_option("--limit", o->limit, "at most N jobs (default 100)")->check(CLI::PositiveNumber);
  cmd.add_flag("--json", o->json, "one JSON object per line instead of a table");
  cmd.add_flag("--counts", o->counts, "counts per queue and state instead of jobs")->excludes(failed)->excludes(limit);
  cmd.footer(
      "States: queued (runnable now), future (run_at later), blocked (waiting for its strand), running, "
      "prefetched (reserved by a server for its workers), held, failed.\n"
      "Examples:\n"
      "  hostq jobs --queue mail --limit 20\n"
      "  hostq jobs --failed --json\n"
      "  hostq jobs --counts");
  return [o, &common] {
    auto store = common.connectStore();
    if (o->counts) return listCounts(*store, *o);
    if (o->failed) return listFailed(*store, *o);
    return listLive(*store, *o);
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("jobs", "List jobs, failed jobs, or counts per queue", hostq::cli::setup)
