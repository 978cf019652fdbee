// hostq bench: end-to-end burn-downs (enqueue N jobs, time a farm until the table is empty) over
// transports and worker counts, with what each cost the database, the CPUs and the hand-off.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/bench_report.hpp"
#include "cli/burndown.hpp"
#include "cli/verbs.hpp"
#include "pool/config_parse.hpp"
#include "protocol/messages.hpp"

namespace hostq::cli {
namespace {

struct BenchFlags {
  std::string transport = "shm";
  std::string workers = "4";
  std::string hosts = "1";
  std::int64_t jobs = 100'000;
  int payload_bytes = 0;
  std::string handler = "noop";
  int repeat = 1;
  bool compare = false;
  bool json = false;
  std::string out;
  int timeout_s = 600;
  int held_batches = -1;
  int held_max_hosts = -1;
  int worker_nice = -1;
  int jobs_per_request = 0;
  std::string batch_max_open;
};

std::vector<std::string> splitComma(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  for (std::string x; std::getline(in, x, ',');)
    if (!x.empty()) v.push_back(x);
  return v;
}

void writeFile(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  if (!f) throw std::runtime_error("writing " + p.string());
}

std::string g_cmdline;

int runBench(const BenchFlags& f, const CommonOptions& common) {
  using namespace burndown;
  // Configurations first: a bad flag is a usage error before anything starts.
  std::vector<Transport> transports;
  for (const auto& t : f.compare ? std::vector<std::string>{"shm", "socket", "direct"} : splitComma(f.transport)) {
    auto p = parseTransport(t);
    if (!p) throw UsageError("--transport: not shm, socket or direct: " + t);
    transports.push_back(*p);
  }
  const auto counts = [](const std::string& flag, const std::string& list, int max) {
    std::vector<int> out;
    for (const auto& w : splitComma(list)) {
      try {
        const int n = std::stoi(w);
        if (n < 1 || n > max) throw std::out_of_range(w);
        out.push_back(n);
      } catch (const std::exception&) {
        throw UsageError(flag + ": not a count (1.." + std::to_string(max) + ") or a comma list of them: " + list);
      }
    }
    return out;
  };
  const std::vector<int> workerCounts = counts("--workers", f.workers, 1000);
  const std::vector<int> hostCounts = counts("--hosts", f.hosts, 256);
  if (transports.empty() || workerCounts.empty() || hostCounts.empty()) throw UsageError("nothing to run");
  int sleepMs = -1;
  std::string appendFile;
  if (f.handler.rfind("append:", 0) == 0) {
    appendFile = f.handler.substr(7);
    if (appendFile.empty()) throw UsageError("--handler: append:FILE needs a file");
    // The workers open it relative to their own directory: make it absolute now.
    appendFile = std::filesystem::absolute(appendFile).string();
  } else if (f.handler.rfind("sleep:", 0) == 0) {
    try {
      sleepMs = std::stoi(f.handler.substr(6));
    } catch (const std::exception&) {
      sleepMs = -1;
    }
    if (sleepMs < 0) throw UsageError("--handler: sleep:MS needs a number of milliseconds");
  } else if (f.handler != "noop") {
    throw UsageError("--handler: noop, sleep:MS or append:FILE");
  }
  std::chrono::milliseconds batchMaxOpen{0};
  if (!f.batch_max_open.empty()) {
    auto d = config_detail::parseDuration(f.batch_max_open);
    if (!d || d->count() < 1) throw UsageError("--batch-max-open: not a duration of at least 1ms: " + f.batch_max_open);
    batchMaxOpen = *d;
  }
  std::vector<RunConfig> configs;
  for (int h : hostCounts) {
    for (int w : workerCounts) {
      for (Transport t : transports) {
        RunConfig c;
        c.transport = t;
        c.workers = w;
        c.hosts = h;
        c.hostname_stem = common.hostname;
        c.jobs = f.jobs;
        c.payload_bytes = f.payload_bytes;
        c.sleep_ms = sleepMs;
        c.append_file = appendFile;
        c.held_batches = f.held_batches;
        c.held_max_hosts = f.held_max_hosts;
        c.worker_nice = f.worker_nice;
        c.jobs_per_request = f.jobs_per_request;
        c.batch_max_open = batchMaxOpen;
        configs.push_back(c);
      }
    }
  }

  installStopSignals();
  auto say = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  Database db(common, say);
  Runner runner(db);
  runner.migrate();

  std::vector<RunResult> runs;
  const int total = static_cast<int>(configs.size()) * f.repeat;
  int n = 0;
  int failed = 0;
  // Repeats interleave the configurations (A B C A B C …) so a slow minute on a shared machine
  // hits every configuration instead of one.
  for (int rep = 1; rep <= f.repeat; ++rep) {
    for (const auto& c : configs) {
      ++n;
      const std::string tag = "[" + std::to_string(n) + "/" + std::to_string(total) + "] " + c.label();
      const double prep = runner.prepare(c);
      std::fprintf(stderr, "%s: enqueued %s jobs (%s) in %.2f s; burning down\n", tag.c_str(),
                   thousands(static_cast<double>(c.jobs)).c_str(), c.handlerName().c_str(), prep);
      RunResult r;
      try {
        r = runner.run(c, true, tag, std::chrono::seconds(f.timeout_s));
      } catch (const Interrupted&) {
        throw;
      } catch (const std::exception& e) {
        if (stopRequested()) throw;
        // One stuck or broken run must not cost the others: record it, clean up, go on.
        r = RunResult{};
        r.config = c;
        r.error = e.what();
        std::fprintf(stderr, "\n%s: FAILED: %s\n", tag.c_str(), e.what());
        runner.discard();
      }
      r.repeat = rep;
      if (!r.error.empty()) {
        ++failed;
        if (f.json) std::printf("%s\n", toJson(r).c_str());
        else std::printf("%-22s FAILED: %s\n", tag.c_str(), r.error.c_str());
      } else if (f.json) {
        std::printf("%s\n", toJson(r).c_str());
      } else {
        std::printf("%-22s %s jobs/s  %s stmts/job (%s)  hand-off p50/p99 %s/%s µs  job gap p50/p99 %s/%s µs  "
                    "fairness %s (jobs/worker %s..%s)  load %.1f\n",
                    tag.c_str(), thousands(r.jobs_per_second).c_str(), fmtNum(r.db_statements_per_job, 4).c_str(),
                    r.db_statements_source.empty() ? "–" : r.db_statements_source.c_str(), fmtNum(r.handoff_p50_us, 1).c_str(),
                    fmtNum(r.handoff_p99_us, 1).c_str(), fmtNum(r.gap_p50_us, 1).c_str(), fmtNum(r.gap_p99_us, 1).c_str(),
                    fmtFairness(r).c_str(), fmtNum(r.fairness_min_jobs, 0).c_str(), fmtNum(r.fairness_max_jobs, 0).c_str(),
                    r.load_1m);
        if (r.config.hosts > 1) {
          std::printf("%-22s DB connections peak %s in all\n", "", fmtNum(r.db_connections_peak, 0).c_str());
          for (const auto& h : r.per_host)
            std::printf("%-22s %s: %s jobs (%s jobs/s)  DB connections peak %s  %s stmts/job\n", "", h.hostname.c_str(),
                        fmtNum(h.jobs, 0).c_str(), fmtNum(h.jobs_per_second, 0).c_str(),
                        fmtNum(h.db_connections_peak, 0).c_str(), fmtNum(h.db_statements_per_job, 4).c_str());
        }
      }
      std::fflush(stdout);
      runs.push_back(std::move(r));
    }
  }

  const auto summary = summarize(runs);
  if (summary.empty()) {
    db.close();
    std::fprintf(stderr, "hostq bench: every run failed\n");
    return 1;
  }
  std::string table = summaryTable(summary);
  std::string ratios = transports.size() > 1 ? ratioTable(summary) : std::string();
  if (!f.json) {
    std::printf("\nMedians over %d repeat%s (%s jobs each, handler %s, payload %d B):\n\n%s", f.repeat,
                f.repeat == 1 ? "" : "s", thousands(static_cast<double>(f.jobs)).c_str(), configs[0].handlerName().c_str(),
                f.payload_bytes, table.c_str());
    if (!ratios.empty()) std::printf("\nRatios of the medians:\n\n%s", ratios.c_str());
  }
  if (!f.out.empty()) {
    std::filesystem::create_directories(f.out);
    const std::filesystem::path dir(f.out);
    writeFile(dir / "runs.csv", toCsv(runs));
    writeFile(dir / "histograms.csv", histogramsCsv(runs));
    writeFile(dir / "hosts.csv", hostsCsv(runs));
    writeFile(dir / "summary.md", "Command: `" + g_cmdline + "`\n\n" + table + (ratios.empty() ? "" : "\n" + ratios));
    writeFile(dir / "chart.svg",
              chartSvg(summary, "hostq bench: " + thousands(static_cast<double>(f.jobs)) + " " + configs[0].handlerName() +
                                    " jobs, median of " + std::to_string(f.repeat)));
    std::fprintf(stderr, "wrote %s/{runs.csv,hosts.csv,histograms.csv,summary.md,chart.svg}\n", f.out.c_str());
  }
  db.close();
  if (failed > 0) {
    std::fprintf(stderr, "hostq bench: %d of %d runs failed (left out of the medians)\n", failed, total);
    return 1;
  }
  return 0;
}

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto f = std::make_shared<BenchFlags>();
  cmd.add_option("--transport", f->transport, "shm | socket | direct, or a comma list");
  cmd.add_option("--workers", f->workers, "worker count, or a comma list (e.g. 1,4,16)");
  cmd.add_option("--hosts", f->hosts,
                 "simulated hosts (farms of --workers each, one database, one set of jobs), or a comma list");
  cmd.add_option("--held-batches", f->held_batches,
                 "the server's held-lock batch channels (0 = written-lock claims; default: the server's)")
      ->check(CLI::Range(0, 16));
  cmd.add_option("--worker-nice", f->worker_nice, "added to each worker's nice value (0-19; default: the workers' default, 5)")
      ->check(CLI::Range(0, 19));
  cmd.add_option("--jobs-per-request", f->jobs_per_request,
                 "most jobs a worker takes per request while its jobs are short (1-256; default: the workers' default, 256)")
      ->check(CLI::Range(1, static_cast<int>(protocol::kMaxJobsPerReserve)));
  cmd.add_option("--held-max-hosts", f->held_max_hosts,
                 "the server's held_max_hosts: held-lock claims only while at most this many hosts are live (0 = always; default: the server's)")
      ->check(CLI::Range(0, 100000));
  cmd.add_option("--batch-max-open", f->batch_max_open, "the server's held-lock batch bound (e.g. 200ms; default: the server's)");
  cmd.add_option("--jobs", f->jobs, "jobs per run (all hosts together)")->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}));
  cmd.add_option("--payload-bytes", f->payload_bytes, "payload size of each job")->check(CLI::Range(0, 1 << 20));
  cmd.add_option("--handler", f->handler, "noop | sleep:MS | append:FILE (each run appends \"ID HOST:PID\" to FILE)");
  cmd.add_option("--repeat", f->repeat, "runs of each configuration, interleaved; medians reported")->check(CLI::Range(1, 1000));
  cmd.add_flag("--compare", f->compare, "shm, socket and direct back to back on the same database, with ratios");
  cmd.add_flag("--json", f->json, "one JSON object per run on stdout (progress stays on stderr)");
  cmd.add_option("--out", f->out, "directory for runs.csv, hosts.csv, histograms.csv, summary.md and chart.svg");
  cmd.add_option("--timeout", f->timeout_s, "seconds one burn-down may take")->check(CLI::Range(1, 86400));
  cmd.footer(
      "Uses --database-url / HOSTQ_DATABASE_URL, else a throwaway PostgreSQL removed at the end.\n"
      "Each run: enqueue --jobs jobs in bulk and VACUUM ANALYZE (not timed), fork a pool, time until\n"
      "delayed_jobs is empty. See docs/performance.md for what each figure means.");
  return [f, &common] {
    try {
      return runBench(*f, common);
    } catch (const std::exception& e) {
      // A stop signal can also surface as the failure of whatever it interrupted (initdb, COPY).
      if (!burndown::stopRequested()) throw;
      std::fprintf(stderr, "\nhostq: interrupted; the farm and any throwaway PostgreSQL were stopped\n");
      return 130;
    }
  };
}

// The command line, for summary.md: read once from /proc (CLI11 has consumed argv by then).
[[maybe_unused]] const bool g_cmdlineRead = [] {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (auto& c : s)
    if (c == '\0') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  g_cmdline = s;
  return true;
}();

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("bench", "Measure end-to-end burn-downs by transport and worker count", hostq::cli::setup)
