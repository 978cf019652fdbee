// hostq demo: the README's first command. A pool of workers burns down a bulk of no-op jobs over
// shared memory, then the same over `direct` (every worker on its own database connection, as
// inst-jobs works) for comparison. Without a database given, PostgreSQL itself is a throwaway.
#include <cstdio>

#include "cli/bench_report.hpp"
#include "cli/burndown.hpp"
#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

struct DemoFlags {
  std::int64_t jobs = 200'000;
  int workers = 4;
  std::optional<std::int64_t> direct_jobs;
};

// Direct mode costs two committed transactions per job, each waiting for its WAL flush (fsync
// stays on): a few hundred jobs/s on this class of machine, so the full 200,000 would take
// minutes. This many keeps it to seconds; jobs/s compares either way.
constexpr std::int64_t kDefaultDirectJobs = 2'000;

int runDemo(const DemoFlags& f, const CommonOptions& common) {
  using namespace burndown;
  installStopSignals();
  auto say = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  const std::int64_t directJobs = f.direct_jobs.value_or(std::min(f.jobs, kDefaultDirectJobs));
  std::printf("hostq demo: %s no-op jobs, a pool of %d workers over shared memory, then %s jobs in direct mode\n",
              thousands(static_cast<double>(f.jobs)).c_str(), f.workers, thousands(static_cast<double>(directJobs)).c_str());
  std::fflush(stdout);

  Database db(common, say);
  Runner runner(db);
  runner.migrate();
  say("schema " + db.schema() + " migrated");

  RunConfig shm;
  shm.transport = Transport::Shm;
  shm.workers = f.workers;
  shm.jobs = f.jobs;
  double prep = runner.prepare(shm);
  say("enqueued " + thousands(static_cast<double>(f.jobs)) + " jobs in bulk in " + fmtNum(prep, 2) + " s (not timed)");
  say("burning down over shared memory:");
  const RunResult a = runner.run(shm, true, "shm   ", std::chrono::seconds(600));

  std::optional<RunResult> b;
  if (directJobs > 0) {
    RunConfig direct = shm;
    direct.transport = Transport::Direct;
    direct.jobs = directJobs;
    prep = runner.prepare(direct);
    say("enqueued " + thousands(static_cast<double>(directJobs)) + " jobs in " + fmtNum(prep, 2) + " s; burning down in direct mode:");
    b = runner.run(direct, true, "direct", std::chrono::seconds(600));
  }

  auto us = [](const std::optional<double>& v) { return v ? fmtNum(v, 1) + " µs" : std::string("–"); };
  // printf's widths count bytes, and "µ" is two.
  auto pad = [](std::string s, std::size_t width) {
    std::size_t chars = 0;
    for (unsigned char ch : s) chars += (ch & 0xC0) != 0x80;
    if (chars < width) s.append(width - chars, ' ');
    return s;
  };
  auto row = [&](const std::string& name, const std::string& x, const std::string& y) {
    std::printf("%s %s %s\n", pad(name, 36).c_str(), pad(x, 28).c_str(), b ? y.c_str() : "");
  };
  std::printf("\n");
  row("", "shared memory", "direct (as inst-jobs)");
  row("workers", std::to_string(a.config.workers), b ? std::to_string(b->config.workers) : "");
  row("jobs", thousands(static_cast<double>(a.config.jobs)), b ? thousands(static_cast<double>(b->config.jobs)) : "");
  row("jobs/s", thousands(a.jobs_per_second), b ? thousands(b->jobs_per_second) : "");
  row("database statements per job", fmtNum(a.db_statements_per_job, 4) + " (hostq's count)",
      b ? fmtNum(b->db_statements_per_job, 3) + " (xact_commit)" : "");
  row("job gap p50 / p99 (worker)", us(a.gap_p50_us) + " / " + us(a.gap_p99_us),
      b ? us(b->gap_p50_us) + " / " + us(b->gap_p99_us) : "");
  row("hand-off p50 / p99 (server)", us(a.handoff_p50_us) + " / " + us(a.handoff_p99_us), b ? "– (no server)" : "");
  row("  of requests sent ahead", us(a.handoff_ahead_p50_us) + " / " + us(a.handoff_ahead_p99_us), "");
  std::printf("\n(job gap: the end of one job → the start of the next, measured in the worker, result report and\n"
              " database trips included: what a worker waits. hand-off: a worker's request → its first job\n"
              " delivered, measured by the server; for the few requests of a worker with nothing to run (%s of\n"
              " them), and apart for the requests a worker with short jobs sends ahead while it still runs jobs)\n",
              a.handoff_count ? thousands(*a.handoff_count).c_str() : "–");
  if (b && b->jobs_per_second > 0) {
    std::printf("\nshared memory: %.1f× the jobs/s of direct mode", a.jobs_per_second / b->jobs_per_second);
    if (a.db_statements_per_job && b->db_statements_per_job && *a.db_statements_per_job > 0)
      std::printf(", 1/%.0f of its database statements per job", *b->db_statements_per_job / *a.db_statements_per_job);
    std::printf(".\n");
    if (b->config.jobs < a.config.jobs)
      std::printf("direct mode ran %s jobs instead of %s to keep the demo short (--direct-jobs N to change);\n"
                  "jobs/s compares the two either way.\n",
                  thousands(static_cast<double>(b->config.jobs)).c_str(), thousands(static_cast<double>(a.config.jobs)).c_str());
  }
  std::printf("load average when the runs started: %.1f / %.1f (1 min; other work on the machine slows both)\n", a.load_1m,
              b ? b->load_1m : a.load_1m);
  std::fflush(stdout);
  if (db.embedded()) say("stopping the throwaway PostgreSQL and removing " + db.embeddedDir());
  db.close();
  return 0;
}

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto f = std::make_shared<DemoFlags>();
  cmd.add_option("--jobs", f->jobs, "jobs to burn down over shared memory")->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}));
  cmd.add_option("--workers", f->workers, "workers in the pool")->check(CLI::Range(1, 1000));
  cmd.add_option("--direct-jobs", f->direct_jobs, "jobs for the direct-mode comparison (0 = skip; default min(--jobs, 2000))")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}));
  cmd.footer("Uses --database-url / HOSTQ_DATABASE_URL, else a throwaway PostgreSQL removed at the end.");
  return [f, &common] {
    try {
      return runDemo(*f, common);
    } catch (const std::exception&) {
      if (!burndown::stopRequested()) throw;
      std::fprintf(stderr, "\nhostq: interrupted; the farm and any throwaway PostgreSQL were stopped\n");
      return 130;
    }
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("demo", "Burn down 200,000 no-op jobs with a pool of 4 workers (and in direct mode, to compare)",
               hostq::cli::setup)
