// hostq jobs: list queued, running and failed jobs, or the counts per queue, tag or strand;
// optionally only those of a tag, strand, queue or state.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/selector_flags.hpp"
#include "cli/times.hpp"
#include "cli/verbs.hpp"
#include "common/json.hpp"

namespace hostq::cli {
namespace {

struct Options {
  SelectorFlags select;
  std::string state;
  std::string by = "queue";
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

int listCounts(Client& client, const Options& o) {
  const auto by = *parseCountBy(o.by);
  const auto counts = client.counts(by, o.select.selector());
  if (o.json) {
    for (const auto& c : counts) {
      // The grouping key first, named after --by, then the states: as `hostq jobs --counts`.
      Json w = Json::object();
      w[o.by] = c.key;
      w["queued"] = c.queued;
      w["future"] = c.future;
      w["blocked"] = c.blocked;
      w["running"] = c.running;
      w["prefetched"] = c.prefetched;
      w["held"] = c.held;
      w["failed"] = c.failed;
      std::printf("%s\n", dumpJson(w).c_str());
    }
    return 0;
  }
  std::string key = o.by;
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::toupper(c); });
  std::vector<std::vector<std::string>> rows{{key, "QUEUED", "FUTURE", "BLOCKED", "RUNNING", "PREFETCHED", "HELD", "FAILED"}};
  for (const auto& c : counts) {
    rows.push_back({cell(c.key, 60), std::to_string(c.queued), std::to_string(c.future), std::to_string(c.blocked),
                    std::to_string(c.running), std::to_string(c.prefetched), std::to_string(c.held),
                    std::to_string(c.failed)});
  }
  printTable(rows);
  return 0;
}

int listFailed(Client& client, const Options& o) {
  const auto jobs = client.listFailed(o.select.selector(), o.limit);
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

int listLive(Client& client, const Options& o, std::optional<JobState> state) {
  const auto jobs = client.list(o.select.selector(), state, o.limit);
  if (o.json) {
    for (const auto& [j, st] : jobs) std::printf("%s\n", toJson(j, toString(st)).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"ID", "QUEUE", "PRI", "STATE", "ATT", "RUN_AT", "TAG", "STRAND", "SINGLETON", "LOCKED_BY"}};
  for (const auto& [j, st] : jobs) {
    rows.push_back({std::to_string(j.id), j.queue, std::to_string(j.priority), toString(st),
                    std::to_string(j.attempts), formatTime(j.run_at, false), cell(j.tag, 40), cell(j.strand, 40),
                    cell(j.singleton, 40), cell(j.locked_by, 40)});
  }
  printTable(rows);
  return 0;
}

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto o = std::make_shared<Options>();
  o->select.add(cmd, " (default: all)");
  auto* state = cmd.add_option("--state", o->state, "only jobs in this state (see below)")
                    ->check(CLI::IsMember({"queued", "future", "blocked", "running", "prefetched", "held", "failed"}));
  auto* failed = cmd.add_flag("--failed", o->failed, "list failed jobs (failed_jobs) instead (= --state failed)");
  auto* limit = cmd.add_option("--limit", o->limit, "at most N jobs (default 100)")->check(CLI::PositiveNumber);
  cmd.add_flag("--json", o->json, "one JSON object per line instead of a table");
  auto* counts = cmd.add_flag("--counts", o->counts, "counts per queue (or --by) and state instead of jobs")
                     ->excludes(failed)
                     ->excludes(limit)
                     ->excludes(state);
  cmd.add_option("--by", o->by, "with --counts: one row per queue (default), tag or strand")
      ->check(CLI::IsMember({"queue", "tag", "strand"}))
      ->needs(counts);
  cmd.footer(
      "States: queued (runnable now), future (run_at later), blocked (waiting for its strand), running, "
      "prefetched (reserved by a server for its workers), held, failed.\n"
      "--tag, --strand, --queue and --state narrow the list together (AND). A periodic job's next run is the\n"
      "future job of its tag, with singleton \"periodic: NAME\".\n"
      "Examples:\n"
      "  hostq jobs --queue mail --limit 20\n"
      "  hostq jobs --tag Report#build --state future\n"
      "  hostq jobs --failed --json\n"
      "  hostq jobs --counts\n"
      "  hostq jobs --counts --by strand --queue imports");
  return [o, &common] {
    auto client = common.client();
    if (o->counts) return listCounts(client, *o);
    const auto state = parseJobState(o->state);
    if (o->failed || state == JobState::Failed) return listFailed(client, *o);
    return listLive(client, *o, state);
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("jobs", "List jobs, failed jobs, or counts per queue, tag or strand", hostq::cli::setup)
