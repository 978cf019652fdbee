// hostq enqueue: one job from flags, N copies (--count), or JSON lines from stdin (--stdin).
#include <cstdio>
#include <iostream>
#include <span>
#include <string>

#include "cli/json.hpp"
#include "cli/times.hpp"
#include "cli/verbs.hpp"
#include "hostq/error.hpp"
#include "store/job_validation.hpp"

namespace hostq::cli {
namespace {

// Rows per copies statement and rows per enqueueMany transaction: large enough to amortise
// the round trip, small enough that one statement never holds a million rows in memory twice.
constexpr std::size_t kBulkChunk = 10'000;
constexpr std::size_t kManyChunk = 1'000;

struct Options {
  std::string tag;
  std::string payload;
  std::string queue;
  int priority = kNormalPriority;
  std::string run_at;
  std::string strand;
  std::string n_strand;
  int max_concurrent = 1;
  std::string singleton;
  std::string on_conflict;
  int max_attempts = 1;
  std::string expires_at;
  std::size_t count = 1;
  bool from_stdin = false;
  bool quiet = false;

  CLI::Option* queue_opt = nullptr;
  CLI::Option* priority_opt = nullptr;
  CLI::Option* max_concurrent_opt = nullptr;
  CLI::Option* max_attempts_opt = nullptr;
  CLI::Option* count_opt = nullptr;
};

OnConflict parseOnConflict(const std::string& s) {
  if (s == "use_earliest") return OnConflict::UseEarliest;
  if (s == "overwrite") return OnConflict::Overwrite;
  if (s == "loose") return OnConflict::Loose;
  if (s == "patient") return OnConflict::Patient;
  throw ValidationError("on_conflict must be use_earliest, overwrite, loose or patient (got \"" + s + "\")");
}

void setTime(NewJob& job, const char* field, const std::string& text) {
  auto t = parseTimeArg(text);
  if (!t) {
    throw ValidationError(std::string(field) + ": not a time: \"" + text +
                          "\" (expected ISO 8601 such as 2026-03-01T12:00:00Z, or +SECONDS)");
  }
  if (std::string_view(field) == "run_at") {
    // Relative run_at goes to the database as an interval, so it counts from the database
    // clock like every other time the store compares.
    job.run_at = t->at;
    job.run_in = t->in;
  } else if (t->at) {
    job.expires_at = t->at;
  } else {
    job.expires_at = std::chrono::floor<std::chrono::microseconds>(std::chrono::system_clock::now()) + *t->in;
  }
}

NewJob fromFlags(const Options& o) {
  NewJob job;
  job.tag = o.tag;
  job.payload = o.payload;
  if (o.queue_opt->count() > 0) job.queue = o.queue;
  job.priority = o.priority;
  if (!o.run_at.empty()) setTime(job, "run_at", o.run_at);
  if (!o.strand.empty()) job.strand = o.strand;
  if (!o.n_strand.empty()) job.n_strand = o.n_strand;
  if (o.max_concurrent_opt->count() > 0) job.max_concurrent = o.max_concurrent;
  if (!o.singleton.empty()) job.singleton = o.singleton;
  if (!o.on_conflict.empty()) job.on_conflict = parseOnConflict(o.on_conflict);
  if (o.max_attempts_opt->count() > 0) job.max_attempts = o.max_attempts;
  if (!o.expires_at.empty()) setTime(job, "expires_at", o.expires_at);
  return job;
}

std::string requireString(const std::string& key, const Json& v) {
  if (!v.is_string()) throw ValidationError(key + " must be a string");
  return v.get<std::string>();
}

int requireInt(const std::string& key, const Json& v) {
  const bool whole = v.is_number_integer() && (v.is_number_unsigned() ? v.get<std::uint64_t>() <= INT32_MAX
                                                                       : v.get<std::int64_t>() >= INT32_MIN &&
                                                                             v.get<std::int64_t>() <= INT32_MAX);
  if (!whole) throw ValidationError(key + " must be a whole number");
  return static_cast<int>(v.get<std::int64_t>());
}

// One JSON line over the flags' values: the flags are defaults (`--queue q --stdin`).
NewJob fromJson(const Json& object, const NewJob& defaults) {
  NewJob job = defaults;
  for (const auto& [key, v] : object.items()) {
    if (v.is_null()) continue;
    if (key == "tag") {
      job.tag = requireString(key, v);
    } else if (key == "payload") {
      job.payload = requireString(key, v);
    } else if (key == "queue") {
      job.queue = requireString(key, v);
    } else if (key == "priority") {
      job.priority = requireInt(key, v);
    } else if (key == "run_at") {
      setTime(job, "run_at", requireString(key, v));
    } else if (key == "strand") {
      job.strand = requireString(key, v);
    } else if (key == "n_strand") {
      job.n_strand = requireString(key, v);
    } else if (key == "max_concurrent") {
      job.max_concurrent = requireInt(key, v);
    } else if (key == "singleton") {
      job.singleton = requireString(key, v);
    } else if (key == "on_conflict") {
      job.on_conflict = parseOnConflict(requireString(key, v));
    } else if (key == "max_attempts") {
      job.max_attempts = requireInt(key, v);
    } else if (key == "expires_at") {
      setTime(job, "expires_at", requireString(key, v));
    } else {
      throw ValidationError("unknown field \"" + key + "\"");
    }
  }
  return job;
}

bool isPlain(const NewJob& job) { return !job.strand && !job.n_strand && !job.singleton; }

void printOutcome(const Enqueued& e) {
  switch (e.result) {
    case EnqueueResult::Inserted:
      std::printf("%lld\n", static_cast<long long>(e.id));
      break;
    case EnqueueResult::Updated:
      std::printf("updated %lld\n", static_cast<long long>(e.id));
      break;
    case EnqueueResult::Dropped:
      std::printf("dropped\n");
      break;
  }
}

// Plain copies: one INSERT … SELECT per chunk, which hands the ids back (COPY would not). Other
// copies go through the singleton/strand logic one row at a time, in transactions of kManyChunk.
int enqueueCopies(Client& client, const NewJob& job, std::size_t count, bool quiet) {
  const bool plain = isPlain(job);
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(count - done, plain ? kBulkChunk : kManyChunk);
    if (plain) {
      for (JobId id : client.enqueueCopies(job, static_cast<std::int64_t>(n))) {
        if (!quiet) std::printf("%lld\n", static_cast<long long>(id));
      }
    } else {
      for (const auto& e : client.enqueueMany(std::vector<NewJob>(n, job))) {
        if (!quiet) printOutcome(e);
      }
    }
    done += n;
  }
  return 0;
}

int enqueueStdin(Client& client, const NewJob& defaults, bool quiet) {
  std::vector<NewJob> jobs;
  std::vector<std::size_t> lines;
  std::string line;
  for (std::size_t number = 1; std::getline(std::cin, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      NewJob job = fromJson(json::parseObject(line), defaults);
      // The store's own rules, checked here so that a bad line is named and refuses the whole
      // input before anything is written.
      store::validateNewJob(job);
      jobs.push_back(std::move(job));
      lines.push_back(number);
    } catch (const std::exception& e) {
      throw ValidationError("stdin line " + std::to_string(number) + ": " + e.what() + "; nothing enqueued");
    }
  }
  if (std::cin.bad()) throw std::runtime_error("reading stdin failed");
  std::size_t done = 0;
  try {
    for (; done < jobs.size(); done += kManyChunk) {
      const std::size_t n = std::min(jobs.size() - done, kManyChunk);
      for (const auto& e : client.enqueueMany(std::span(jobs).subspan(done, n))) {
        if (!quiet) printOutcome(e);
      }
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    // Earlier chunks are committed: say exactly which lines made it.
    std::string msg = "stdin lines " + std::to_string(lines[done]) + "-" +
                      std::to_string(lines[std::min(done + kManyChunk, jobs.size()) - 1]) + ": " + e.what();
    if (done > 0) msg += "; lines up to " + std::to_string(lines[done - 1]) + " were enqueued (printed above)";
    throw std::runtime_error(msg);
  }
  return 0;
}

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto o = std::make_shared<Options>();
  auto* tag = cmd.add_option("TAG", o->tag, "handler name (the job's tag)");
  auto* payload = cmd.add_option("PAYLOAD", o->payload, "opaque text handed to the handler (default empty)");
  o->queue_opt = cmd.add_option("--queue", o->queue, "queue (default \"queue\")");
  o->priority_opt = cmd.add_option("--priority", o->priority, "0 (highest) … 1000000 (default 10)");
  cmd.add_option("--run-at", o->run_at, "TIME to run at: ISO 8601 (UTC without a zone) or +SECONDS");
  auto* strand = cmd.add_option("--strand", o->strand, "strand: jobs of one strand run one at a time, in order");
  auto* nStrand = cmd.add_option("--n-strand", o->n_strand, "NAME[/EXT]: a strand run up to --max-concurrent wide");
  o->max_concurrent_opt = cmd.add_option("--max-concurrent", o->max_concurrent, "concurrency of --n-strand (default 1)")
                              ->check(CLI::PositiveNumber)
                              ->needs(nStrand);
  strand->excludes(nStrand);
  auto* singleton = cmd.add_option("--singleton", o->singleton, "at most one queued and one running job per value");
  cmd.add_option("--on-conflict", o->on_conflict, "when the singleton is queued already (default use_earliest)")
      ->check(CLI::IsMember({"use_earliest", "overwrite", "loose", "patient"}))
      ->needs(singleton);
  o->max_attempts_opt = cmd.add_option("--max-attempts", o->max_attempts, "attempts before the job fails for good")
                            ->check(CLI::PositiveNumber);
  cmd.add_option("--expires-at", o->expires_at, "TIME after which the job fails instead of running");
  o->count_opt = cmd.add_option("--count", o->count, "enqueue N copies; prints their ids, one per line")
                     ->check(CLI::PositiveNumber);
  auto* fromStdin = cmd.add_flag("--stdin", o->from_stdin,
                                 "read one JSON object per line (fields: tag, payload, queue, priority, run_at, strand, "
                                 "n_strand, max_concurrent, singleton, on_conflict, max_attempts, expires_at); "
                                 "flags give defaults");
  fromStdin->excludes(tag)->excludes(payload)->excludes(o->count_opt);
  cmd.add_flag("--quiet", o->quiet, "print nothing on success");
  cmd.footer(
      "Prints each new job's id on its own line; for a singleton that was already queued, \"updated ID\" or "
      "\"dropped\".\n"
      "Examples:\n"
      "  hostq enqueue mail.send '{\"to\":42}' --queue mail --priority 5\n"
      "  hostq enqueue report.build --run-at +3600 --singleton report:daily --on-conflict overwrite\n"
      "  hostq enqueue hostq.noop --count 100000\n"
      "  printf '{\"tag\":\"a\"}\\n{\"tag\":\"b\",\"strand\":\"s\"}\\n' | hostq enqueue --stdin");
  return [o, &common] {
    if (!o->from_stdin && o->tag.empty()) throw UsageError("TAG is required (or --stdin)");
    NewJob job = fromFlags(*o);
    if (!o->from_stdin) store::validateNewJob(job);
    auto client = common.client();
    if (o->from_stdin) return enqueueStdin(client, job, o->quiet);
    if (o->count_opt->count() > 0) return enqueueCopies(client, job, o->count, o->quiet);
    const auto outcome = client.enqueue(job);
    if (!o->quiet) printOutcome(outcome);
    return 0;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("enqueue", "Enqueue jobs", hostq::cli::setup)
