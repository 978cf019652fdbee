#include "cli/burndown.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli/fairness.hpp"
#include "cli/server_query.hpp"
#include "common/json.hpp"
#include "common/log.hpp"
#include "common/monotonic_clock.hpp"
#include "common/proc_stat.hpp"
#include "hostq/pool.hpp"
#include "store/quote_ident.hpp"
#include "store/store.hpp"
#include "pool/embedded_postgres.hpp"
#include "store/pg_connection.hpp"
#include "store/sql_catalog.hpp"

namespace hostq::cli::burndown {

// --- stop signals ---------------------------------------------------------------------------

namespace {
volatile sig_atomic_t g_stop = 0;
extern "C" void onStopSignal(int) { g_stop = 1; }
}  // namespace

void installStopSignals() {
  struct sigaction sa{};
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns early with EINTR
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}
bool stopRequested() noexcept { return g_stop != 0; }
void throwIfStopped() {
  if (stopRequested()) throw Interrupted();
}

// --- histograms -----------------------------------------------------------------------------

void SharedHistogram::reset() noexcept {
  for (auto& b : buckets) b.store(0, std::memory_order_relaxed);
}

LatencyHistogram SharedHistogram::snapshot() const noexcept {
  LatencyHistogram h;
  for (int i = 0; i < LatencyHistogram::kBuckets; ++i) h.addToBucket(i, buckets[i].load(std::memory_order_relaxed));
  return h;
}

std::optional<double> percentileUs(const LatencyHistogram& h, double q) noexcept {
  if (h.count() == 0) return std::nullopt;
  return static_cast<double>(h.percentile(q)) / 1000.0;
}

// --- small helpers ----------------------------------------------------------------------------

std::string thousands(double v) {
  const bool neg = v < 0;
  auto n = static_cast<std::uint64_t>(std::llround(std::fabs(v)));
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return neg ? "-" + out : out;
}

namespace {

using Clock = std::chrono::steady_clock;

using store::quoteIdent;

void sleepMs(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1'000'000L};
  ::nanosleep(&ts, nullptr);  // EINTR (a stop signal) just ends the nap early
}

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double ticksToSeconds(std::uint64_t t) { return static_cast<double>(t) / static_cast<double>(::sysconf(_SC_CLK_TCK)); }

std::optional<double> peakRssKb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  }
  return std::nullopt;
}

double load1m() {
  std::ifstream in("/proc/loadavg");
  double l = 0;
  in >> l;
  return l;
}

using store::Phase;
using store::sql;

/// The monitor's connection: the poll loop and the pg_stat_database readings, whose own
/// transactions (statements() counts each one sent, a Parse included) are subtracted from the
/// farm's.
std::unique_ptr<store::PgConnection> connectMonitor(const std::string& url, const std::string& schema) {
  StoreOptions o;
  o.schema = schema;
  o.application_name = "hostq bench monitor";
  auto pg = std::make_unique<store::PgConnection>(url, o);
  pg->open();
  return pg;
}

/// The one value of a monitor statement's one row.
std::int64_t number(store::PgConnection& pg, const store::Statement& st, const char* column) {
  const auto r = pg.exec(st, {}, Phase::Read);
  return r.rows() > 0 ? r.i64(0, r.column(column)) : 0;
}

/// A pg_stat_database.xact_commit reading and how many statements this connection had sent
/// before it: our own share of the counter.
struct XactReading {
  double value = 0;
  std::uint64_t own = 0;
};

XactReading readXact(store::PgConnection& pg) {
  // Our backend's counters reach the shared stats at most once a second unless forced; forcing
  // makes every statement sent before the reading part of it, so our share is exact.
  pg.exec(sql("bench_flush_stats"), {}, Phase::Read);
  XactReading r;
  r.own = pg.statements();
  r.value = static_cast<double>(number(pg, sql("bench_xact_commit"), "xact_commit"));
  return r;
}

// Worker side of the hand-off histogram: set in the worker process only (after the fork).
std::uint64_t g_lastJobEnd = 0;

}  // namespace

// --- RunConfig ----------------------------------------------------------------------------------

std::string RunConfig::handlerName() const {
  return sleep_ms < 0 ? std::string("noop") : "sleep:" + std::to_string(sleep_ms);
}

std::string RunConfig::label() const { return std::string(toString(transport)) + " x" + std::to_string(workers); }

// --- Database -----------------------------------------------------------------------------------

Database::Database(const CommonOptions& common, const std::function<void(const std::string&)>& say) {
  m_url = common.databaseUrl();
  if (m_url.empty()) {
    say("starting a throwaway PostgreSQL (no --database-url or HOSTQ_DATABASE_URL given)");
    m_embedded = EmbeddedPostgres::start();
    m_url = m_embedded->url();
    say("  PostgreSQL is up in " + m_embedded->dir() + " (removed at the end)");
  }
  if (!common.schema.empty()) {
    m_schema = common.schema;
  } else {
    m_schema = "hostq_bench_" + std::to_string(::getpid());
    m_dropSchema = !m_embedded;
  }
}

Database::~Database() { close(); }

std::string Database::embeddedDir() const { return m_embedded ? m_embedded->dir() : std::string(); }

void Database::close() noexcept {
  if (m_dropSchema) {
    m_dropSchema = false;
    try {
      // Built here: an identifier cannot be a parameter.
      connectMonitor(m_url, "")->simple("DROP SCHEMA IF EXISTS " + quoteIdent(m_schema) + " CASCADE", Phase::Write);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hostq: dropping schema %s: %s\n", m_schema.c_str(), e.what());
    }
  }
  if (m_embedded) {
    m_embedded->stop();
    m_embedded.reset();
  }
}

// --- Progress -----------------------------------------------------------------------------------

Progress::Progress(std::string label, std::int64_t total, bool enabled, double plain_every_s)
    : m_label(std::move(label)), m_total(total), m_enabled(enabled), m_tty(::isatty(2) == 1), m_plainEvery(plain_every_s) {}

void Progress::update(std::int64_t done, double elapsed_s) {
  if (!m_enabled) return;
  const double every = m_tty ? 0.1 : m_plainEvery;
  if (elapsed_s - m_lastDraw < every) return;
  m_lastDraw = elapsed_s;
  draw(done, elapsed_s, false);
}

void Progress::finish(std::int64_t done, double elapsed_s) {
  if (!m_enabled) return;
  draw(done, elapsed_s, true);
}

void Progress::draw(std::int64_t done, double elapsed_s, bool final) {
  done = std::clamp<std::int64_t>(done, 0, m_total);
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
  const double frac = m_total > 0 ? static_cast<double>(done) / static_cast<double>(m_total) : 1;
  char eta[32] = "";
  if (final)
    std::snprintf(eta, sizeof eta, "in %.2f s", elapsed_s);
  else if (rate > 0)
    std::snprintf(eta, sizeof eta, "ETA %.1f s", static_cast<double>(m_total - done) / rate);
  else
    std::snprintf(eta, sizeof eta, "ETA ?");
  std::string line;
  if (m_tty) {
    constexpr int kWidth = 24;
    const int fill = static_cast<int>(frac * kWidth);
    line = "  " + m_label + " [" + std::string(static_cast<std::size_t>(fill), '#') +
           std::string(static_cast<std::size_t>(kWidth - fill), '-') + "] ";
  } else {
    line = "  " + m_label + ": ";
  }
  char tail[160];
  std::snprintf(tail, sizeof tail, "%3.0f%%  %s/%s jobs  %s jobs/s  %s", frac * 100, thousands(static_cast<double>(done)).c_str(),
                thousands(static_cast<double>(m_total)).c_str(), thousands(rate).c_str(), eta);
  line += tail;
  if (m_tty) {
    const std::size_t width = line.size();
    if (width < m_lastWidth) line.append(m_lastWidth - width, ' ');
    m_lastWidth = width;
    std::fprintf(stderr, "\r%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

// --- Runner -------------------------------------------------------------------------------------

struct Runner::Impl {
  Database& db;
  std::unique_ptr<Store> store;
  std::unique_ptr<store::PgConnection> pg;
  SharedHistogram* hist = nullptr;
  std::string sockDir;
  pid_t pool = -1;

  explicit Impl(Database& d) : db(d) {
    void* p = ::mmap(nullptr, sizeof(SharedHistogram), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
    hist = new (p) SharedHistogram;
    hist->reset();
    char tmpl[] = "/tmp/hostq-bench.XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    sockDir = tmpl;
  }

  ~Impl() {
    stopFarm(false);
    std::error_code ec;
    std::filesystem::remove_all(sockDir, ec);
    ::munmap(hist, sizeof(SharedHistogram));
  }

  std::string socketPath() const { return sockDir + "/hq.sock"; }

  pid_t forkPool(const RunConfig& c) {
    PoolOptions o;
    o.settings.database_url = db.url();
    o.settings.server.socket_path = socketPath();
    o.settings.slow_exit_timeout = std::chrono::seconds(10);
    // The grace lets workers of a previous server incarnation reclaim their jobs before this
    // host's stale prefetch locks are released, and the reserver waits it out before its first
    // reservation. A burn-down always starts from a table no server holds anything of (the
    // previous run stopped gracefully), so waiting would only add 3 s to every run.
    o.settings.server.restart_grace = std::chrono::milliseconds(0);
    if (c.held_batches >= 0) o.settings.server.held_batches = c.held_batches;
    if (c.batch_max_open.count() > 0) o.settings.server.batch_max_open = c.batch_max_open;
    WorkerSettings w;
    w.config.workers = c.workers;
    w.transport = c.transport;
    w.builtin_handlers = true;
    o.settings.workers = {w};
    o.schema = db.schema();
    o.run_server = c.transport != Transport::Direct;
    SharedHistogram* h = hist;
    o.hooks.before_perform.push_back([h](const Job&) {
      if (g_lastJobEnd != 0) h->record(monotonicNs() - g_lastJobEnd);
    });
    o.hooks.after_perform.push_back([](const Job&, const Outcome&) { g_lastJobEnd = monotonicNs(); });
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      // The farm's log lines would break the progress line (and a worker's graceful exit logs a
      // warning on the server); errors still show, HOSTQ_LOG_LEVEL overrides.
      ::setenv("HOSTQ_LOG_LEVEL", "error", 0);
      log::init("pool");
      int code = 1;
      try {
        code = runPool(std::move(o));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "hostq: pool: %s\n", e.what());
      }
      ::_exit(code);
    }
    return pid;
  }

  /// QUIT (graceful) or TERM (fast), then escalation; waits for the pool to exit.
  void stopFarm(bool graceful) noexcept {
    if (pool <= 0) return;
    ::kill(pool, graceful ? SIGQUIT : SIGTERM);
    const auto waitFor = [&](double seconds) {
      const auto start = Clock::now();
      while (secondsSince(start) < seconds) {
        int status = 0;
        const pid_t r = ::waitpid(pool, &status, WNOHANG);
        if (r == pool || (r < 0 && errno == ECHILD)) return true;
        sleepMs(5);
      }
      return false;
    };
    if (!waitFor(30)) {
      std::fprintf(stderr, "hostq: the pool did not stop; sending TERM\n");
      ::kill(pool, SIGTERM);
      if (!waitFor(5)) {
        ::kill(pool, SIGKILL);
        (void)waitFor(5);
      }
    }
    pool = -1;
  }
};

Runner::Runner(Database& db) : m_impl(std::make_unique<Impl>(db)) {}
Runner::~Runner() = default;

void Runner::migrate() {
  auto& m = *m_impl;
  StoreOptions so;
  so.schema = m.db.schema();
  so.application_name = "hostq bench";
  m.store = Store::connect(m.db.url(), so);
  m.store->exec("CREATE SCHEMA IF NOT EXISTS " + quoteIdent(m.db.schema()));
  m.store->migrate();
  m.pg = connectMonitor(m.db.url(), m.db.schema());
  // Prepared before any counted window: whether a Parse counts as a transaction is no concern.
  for (const auto* st : {&sql("bench_poll"), &sql("bench_first_id"), &sql("bench_job_count"),
                         &sql("bench_backend_pid"), &sql("bench_other_clients"), &sql("bench_flush_stats"),
                         &sql("bench_xact_commit"), &sql("bench_jobs_left")}) {
    m.pg->prepare(*st, Phase::Read);
  }
}

double Runner::prepare(const RunConfig& c) {
  auto& m = *m_impl;
  const auto start = Clock::now();
  NewJob proto;
  if (c.sleep_ms < 0) {
    proto.tag = "hostq.noop";
    proto.payload.assign(static_cast<std::size_t>(std::max(0, c.payload_bytes)), 'x');
  } else {
    proto.tag = "hostq.sleep";
    proto.payload = std::to_string(c.sleep_ms);
    // hostq.sleep reads the leading number; the padding only makes the row as large as asked.
    if (static_cast<int>(proto.payload.size()) < c.payload_bytes)
      proto.payload.append(static_cast<std::size_t>(c.payload_bytes) - proto.payload.size(), ' ');
  }
  constexpr std::int64_t kChunk = 20'000;
  std::vector<NewJob> chunk;
  for (std::int64_t done = 0; done < c.jobs;) {
    throwIfStopped();
    const std::int64_t n = std::min(kChunk, c.jobs - done);
    chunk.assign(static_cast<std::size_t>(n), proto);
    done += static_cast<std::int64_t>(m.store->enqueueBulk(chunk));
  }
  throwIfStopped();
  // Fresh statistics and a clean visibility map: every run starts from the same table state,
  // whatever the previous run left behind.
  m.pg->simple(sql("bench_vacuum"), Phase::Write);
  return secondsSince(start);
}

void Runner::discard() {
  m_impl->stopFarm(false);
  m_impl->pg->exec(sql("bench_discard"), {}, Phase::Write);
}

RunResult Runner::run(const RunConfig& c, bool show_progress, const std::string& progress_label,
                      std::chrono::seconds timeout) {
  auto& m = *m_impl;
  auto& pg = *m.pg;
  RunResult r;
  r.config = c;
  r.load_1m = load1m();

  const std::int64_t firstId = number(pg, sql("bench_first_id"), "id");
  const std::int64_t total = number(pg, sql("bench_job_count"), "jobs");
  // PostgreSQL's processes: the postmaster (parent of our backend) and its children. Only when
  // the database runs on this host; our own backend's share is taken out again.
  const int backend = static_cast<int>(number(pg, sql("bench_backend_pid"), "pid"));
  int postmaster = 0;
  if (auto s = readProcStat(backend); s && s->comm == "postgres") postmaster = s->ppid;
  const auto pgTicks = [&]() -> std::optional<std::uint64_t> {
    if (postmaster == 0) return std::nullopt;
    std::uint64_t t = 0;
    for (const auto& p : listProcesses()) {
      if (p.pid == postmaster) t += p.ticks() + p.childTicks();  // + backends that exited meanwhile
      else if (p.ppid == postmaster) t += p.ticks();
    }
    return t;
  };
  const auto ownTicks = [&]() -> std::uint64_t {
    auto s = readProcStat(backend);
    return s ? s->ticks() : 0;
  };
  const std::int64_t baselineClients = number(pg, sql("bench_other_clients"), "clients");
  const XactReading xactBefore = readXact(pg);
  const auto pgBefore = pgTicks();
  const auto ownBefore = ownTicks();

  m.hist->reset();
  Progress progress(progress_label, total, show_progress);
  const auto t0 = Clock::now();
  m.pool = m.forkPool(c);
  std::int64_t lastId = firstId;
  for (;;) {
    throwIfStopped();
    int status = 0;
    if (::waitpid(m.pool, &status, WNOHANG) == m.pool) {
      m.pool = -1;
      throw std::runtime_error("the pool exited before the jobs were done (status " + std::to_string(status) + ")");
    }
    const auto row = pg.exec(sql("bench_poll"), {std::to_string(lastId)}, Phase::Read);
    const double elapsed = secondsSince(t0);
    if (row.rows() == 0) {
      r.elapsed_s = elapsed;
      break;
    }
    lastId = row.i64(0, row.column("id"));
    if (lastId > firstId && !r.startup_ms) r.startup_ms = elapsed * 1000.0;
    // Jobs finish in about id order, so the oldest id left tells how far the burn-down is.
    progress.update(std::min(total, lastId - firstId), elapsed);
    if (elapsed > static_cast<double>(timeout.count())) {
      // Say what is left and who holds it: a stuck job is usually a lost hand-off.
      const auto left = pg.exec(sql("bench_jobs_left"), {}, Phase::Read);
      throw std::runtime_error("the burn-down did not finish within " + std::to_string(timeout.count()) + " s (" +
                               left.str(0, left.column("summary")) + ")");
    }
    sleepMs(10);
  }
  progress.finish(total, r.elapsed_s);
  const double jobs = static_cast<double>(std::max<std::int64_t>(total, 1));
  r.config.jobs = total;
  r.jobs_per_second = r.elapsed_s > 0 ? static_cast<double>(total) / r.elapsed_s : 0;

  // Everything below is read before the farm stops: its processes must still exist.
  std::uint64_t serverTicks = 0, workerTicks = 0;
  bool haveServer = false;
  for (const auto& p : listProcesses()) {
    if (p.ppid != m.pool) continue;
    const auto hwm = peakRssKb(p.pid);
    if (p.comm == "hostq server") {
      haveServer = true;
      serverTicks += p.ticks();
      if (hwm) r.server_peak_rss_kb = *hwm;
    } else {
      workerTicks += p.ticks();
      if (hwm) r.worker_peak_rss_kb = std::max(r.worker_peak_rss_kb.value_or(0), *hwm);
    }
  }
  if (haveServer) r.cpu_server_us_per_job = ticksToSeconds(serverTicks) * 1e6 / jobs;
  r.cpu_workers_us_per_job = ticksToSeconds(workerTicks) * 1e6 / jobs;
  if (const auto pgAfter = pgTicks(); pgAfter && pgBefore) {
    const std::uint64_t own = ownTicks() - ownBefore;
    const std::uint64_t d = *pgAfter - *pgBefore;
    r.cpu_postgres_us_per_job = ticksToSeconds(d > own ? d - own : 0) * 1e6 / jobs;
  }
  r.gap = m.hist->snapshot();
  r.gap_p50_us = percentileUs(r.gap, 0.50);
  r.gap_p99_us = percentileUs(r.gap, 0.99);
  r.gap_p999_us = percentileUs(r.gap, 0.999);

  if (c.transport != Transport::Direct) {
    std::string err;
    StatsClient client;
    if (auto s = client.query(m.socketPath(), std::chrono::milliseconds(3000), err)) {
      r.stats_json = *s;
      const Json stats = parseJsonOrDiscard(*s);
      r.db_statements = numberAt(stats, "/db_statements");
      if (r.db_statements) r.db_statements_per_job = *r.db_statements / jobs;
      r.db_statements_source = "server_stats";
      r.handoff_p50_us = numberAt(stats, "/handoff/p50_us");
      r.handoff_p99_us = numberAt(stats, "/handoff/p99_us");
      r.handoff_p999_us = numberAt(stats, "/handoff/p999_us");
      r.enqueue_to_start_p50_us = numberAt(stats, "/enqueue_to_start/p50_us");
      r.enqueue_to_start_p99_us = numberAt(stats, "/enqueue_to_start/p99_us");
      r.enqueue_to_start_p999_us = numberAt(stats, "/enqueue_to_start/p999_us");
      r.reservations = numberAt(stats, "/reservations");
      r.max_batch = numberAt(stats, "/max_batch");
      r.held_batches = numberAt(stats, "/held_batches/closed");
      r.held_open_ms_p50 = numberAt(stats, "/held_batches/open_ms_p50");
      r.held_open_ms_p99 = numberAt(stats, "/held_batches/open_ms_p99");
      r.held_jobs_per_batch = numberAt(stats, "/held_batches/jobs_mean");
      r.held_promotions = numberAt(stats, "/held_batches/promotions");
      if (const auto counts = workerJobCounts(*s)) {
        const Fairness f = computeFairness(r.elapsed_s, c.workers, *counts);
        r.fairness_min_jobs = static_cast<double>(f.min_jobs);
        r.fairness_max_jobs = static_cast<double>(f.max_jobs);
        r.fairness_worst_gap_ratio = f.worst_gap_ratio;
        r.workers_served = f.workers_served;
      }
    } else {
      std::fprintf(stderr, "hostq: no stats from the server: %s\n", err.c_str());
    }
  }
  m.stopFarm(true);

  // The farm's backends flush their counters as they exit: wait for them to be gone, then until
  // two readings agree (bounded: another user of the database may never let them agree).
  const auto settleStart = Clock::now();
  while (secondsSince(settleStart) < 2.0) {
    if (number(pg, sql("bench_other_clients"), "clients") <= baselineClients) break;
    sleepMs(20);
  }
  std::optional<double> farmXacts;
  const auto readStart = Clock::now();
  for (;;) {
    const XactReading after = readXact(pg);
    const double v = after.value - xactBefore.value - static_cast<double>(after.own - xactBefore.own);
    const bool stable = farmXacts && *farmXacts == v;
    farmXacts = v;
    if (stable || secondsSince(readStart) > 1.0) break;
    sleepMs(50);
  }
  r.xact_commit_delta = farmXacts;
  if (farmXacts) r.xact_commit_per_job = *farmXacts / jobs;
  if (c.transport == Transport::Direct && farmXacts) {
    r.db_statements = farmXacts;
    r.db_statements_per_job = r.xact_commit_per_job;
    r.db_statements_source = "xact_commit";
  }
  return r;
}

}  // namespace hostq::cli::burndown
