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
  if (!append_file.empty()) return "append";
  return sleep_ms < 0 ? std::string("noop") : "sleep:" + std::to_string(sleep_ms);
}

std::string RunConfig::label() const {
  std::string l = std::string(toString(transport)) + " x" + std::to_string(workers);
  if (hosts > 1) l += " on " + std::to_string(hosts) + " hosts";
  return l;
}

std::string RunConfig::hostname(int i) const {
  if (hosts <= 1) return hostname_stem;
  return (hostname_stem.empty() ? std::string("benchhost") : hostname_stem) + "-" + std::to_string(i + 1);
}

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

namespace {

/// The host a backend works for: the last word of its application_name, up to a ':' ("hostq
/// server batch HOST", "hostq worker HOST:PID").
std::string hostOfApplication(const std::string& name) {
  const auto space = name.rfind(' ');
  std::string last = space == std::string::npos ? name : name.substr(space + 1);
  if (const auto colon = last.rfind(':'); colon != std::string::npos) last.resize(colon);
  return last;
}

/// How many backends of this database each of `hosts` holds now (same order).
std::vector<int> connectionsByHost(store::PgConnection& pg, const std::vector<std::string>& hosts) {
  const auto r = pg.exec(sql("bench_connections_by_application"), {}, Phase::Read);
  const int name = r.column("application_name"), n = r.column("n");
  std::vector<int> out(hosts.size(), 0);
  for (int i = 0; i < r.rows(); ++i) {
    const auto it = std::find(hosts.begin(), hosts.end(), hostOfApplication(r.str(i, name)));
    if (it != hosts.end()) out[static_cast<std::size_t>(it - hosts.begin())] += r.i32(i, n);
  }
  return out;
}

std::optional<double> maxOf(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

std::optional<double> sumOf(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return *a + *b;
}

}  // namespace

struct Runner::Impl {
  Database& db;
  std::unique_ptr<Store> store;
  std::unique_ptr<store::PgConnection> pg;
  SharedHistogram* hist = nullptr;
  std::string sockDir;
  std::vector<pid_t> pools;  ///< one per simulated host; -1 once reaped

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

  std::string socketPath(int host) const {
    return sockDir + (host == 0 ? std::string("/hq.sock") : "/hq-" + std::to_string(host + 1) + ".sock");
  }

  pid_t forkPool(const RunConfig& c, int host) {
    PoolOptions o;
    o.settings.database_url = db.url();
    o.settings.server.socket_path = socketPath(host);
    o.settings.server.hostname = c.hostname(host);
    o.settings.slow_exit_timeout = std::chrono::seconds(10);
    // The grace lets workers of a previous server incarnation reclaim their jobs before this
    // host's stale prefetch locks are released, and the reserver waits it out before its first
    // reservation. A burn-down always starts from a table no server holds anything of (the
    // previous run stopped gracefully), so waiting would only add 3 s to every run.
    o.settings.server.restart_grace = std::chrono::milliseconds(0);
    if (c.held_batches >= 0) o.settings.server.held_batches = c.held_batches;
    if (c.held_max_hosts >= 0) o.settings.server.held_max_hosts = c.held_max_hosts;
    if (c.batch_max_open.count() > 0) o.settings.server.batch_max_open = c.batch_max_open;
    WorkerSettings w;
    w.config.workers = c.workers;
    w.transport = c.transport;
    w.builtin_handlers = true;
    if (c.worker_nice >= 0) w.nice = c.worker_nice;
    if (c.jobs_per_request > 0) w.jobs_per_request = c.jobs_per_request;
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

  /// QUIT (graceful) or TERM (fast) to every pool, then escalation; waits for them to exit.
  void stopFarm(bool graceful) noexcept {
    const auto signalAll = [&](int sig) {
      for (pid_t p : pools)
        if (p > 0) ::kill(p, sig);
    };
    const auto waitFor = [&](double seconds) {
      const auto start = Clock::now();
      for (;;) {
        bool left = false;
        for (pid_t& p : pools) {
          if (p <= 0) continue;
          int status = 0;
          const pid_t r = ::waitpid(p, &status, WNOHANG);
          if (r == p || (r < 0 && errno == ECHILD)) p = -1;
          else left = true;
        }
        if (!left) return true;
        if (secondsSince(start) >= seconds) return false;
        sleepMs(5);
      }
    };
    signalAll(graceful ? SIGQUIT : SIGTERM);
    if (!waitFor(30)) {
      std::fprintf(stderr, "hostq: the pool did not stop; sending TERM\n");
      signalAll(SIGTERM);
      if (!waitFor(5)) {
        signalAll(SIGKILL);
        (void)waitFor(5);
      }
    }
    pools.clear();
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
                         &sql("bench_xact_commit"), &sql("bench_jobs_left"),
                         &sql("bench_connections_by_application")}) {
    m.pg->prepare(*st, Phase::Read);
  }
}

double Runner::prepare(const RunConfig& c) {
  auto& m = *m_impl;
  const auto start = Clock::now();
  NewJob proto;
  if (!c.append_file.empty()) {
    proto.tag = "hostq.append";
    proto.payload = c.append_file;
  } else if (c.sleep_ms < 0) {
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
  const int hosts = std::max(1, c.hosts);
  // The names the servers will run under (a single host's default resolved as its server will).
  std::vector<std::string> hostnames;
  for (int i = 0; i < hosts; ++i) hostnames.push_back(resolveHostname(c.hostname(i)));

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
  std::vector<int> connPeak(static_cast<std::size_t>(hosts), 0);
  int connPeakTotal = 0;
  const auto sampleConnections = [&] {
    const auto now = connectionsByHost(pg, hostnames);
    int sum = 0;
    for (std::size_t i = 0; i < now.size(); ++i) {
      connPeak[i] = std::max(connPeak[i], now[i]);
      sum += now[i];
    }
    connPeakTotal = std::max(connPeakTotal, sum);
  };
  const auto t0 = Clock::now();
  for (int i = 0; i < hosts; ++i) m.pools.push_back(m.forkPool(c, i));
  std::int64_t lastId = firstId;
  auto nextSample = Clock::now();
  for (;;) {
    throwIfStopped();
    for (pid_t& p : m.pools) {
      int status = 0;
      if (p > 0 && ::waitpid(p, &status, WNOHANG) == p) {
        p = -1;
        throw std::runtime_error("a pool exited before the jobs were done (status " + std::to_string(status) + ")");
      }
    }
    // Backends come and go with reconnects: a sample every 50 ms, far apart enough not to load
    // the database the run measures (its statements are taken out of xact_commit like the polls').
    if (Clock::now() >= nextSample) {
      sampleConnections();
      nextSample = Clock::now() + std::chrono::milliseconds(50);
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
  sampleConnections();
  progress.finish(total, r.elapsed_s);
  const double jobs = static_cast<double>(std::max<std::int64_t>(total, 1));
  r.config.jobs = total;
  r.jobs_per_second = r.elapsed_s > 0 ? static_cast<double>(total) / r.elapsed_s : 0;
  r.db_connections_peak = connPeakTotal;
  r.per_host.resize(static_cast<std::size_t>(hosts));
  for (int i = 0; i < hosts; ++i) {
    auto& h = r.per_host[static_cast<std::size_t>(i)];
    h.hostname = hostnames[static_cast<std::size_t>(i)];
    h.db_connections_peak = connPeak[static_cast<std::size_t>(i)];
  }

  // Everything below is read before the farm stops: its processes must still exist.
  std::uint64_t serverTicks = 0, workerTicks = 0;
  std::vector<std::uint64_t> hostServerTicks(static_cast<std::size_t>(hosts), 0), hostWorkerTicks(hostServerTicks);
  bool haveServer = false;
  for (const auto& p : listProcesses()) {
    const auto pool = std::find(m.pools.begin(), m.pools.end(), p.ppid);
    if (pool == m.pools.end()) continue;
    const auto host = static_cast<std::size_t>(pool - m.pools.begin());
    const auto hwm = peakRssKb(p.pid);
    if (p.comm == "hostq server") {
      haveServer = true;
      serverTicks += p.ticks();
      hostServerTicks[host] += p.ticks();
      if (hwm) r.server_peak_rss_kb = std::max(r.server_peak_rss_kb.value_or(0), *hwm);
    } else {
      workerTicks += p.ticks();
      hostWorkerTicks[host] += p.ticks();
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
    std::vector<std::uint64_t> counts;  // jobs per worker, every host's
    bool haveCounts = false;
    bool haveStats = false;
    std::optional<double> heldJobs;  // Σ closed × jobs_mean, for the mean over every host's batches
    for (int i = 0; i < hosts; ++i) {
      auto& h = r.per_host[static_cast<std::size_t>(i)];
      std::string err;
      StatsClient client;
      const auto s = client.query(m.socketPath(i), std::chrono::milliseconds(3000), err);
      if (!s) {
        std::fprintf(stderr, "hostq: no stats from the server of %s: %s\n", h.hostname.c_str(), err.c_str());
        continue;
      }
      haveStats = true;
      if (hosts == 1) r.stats_json = *s;
      const Json stats = parseJsonOrDiscard(*s);
      const auto completed = numberAt(stats, "/jobs_completed"), failed = numberAt(stats, "/jobs_failed");
      if (completed) h.jobs = *completed + failed.value_or(0);
      if (h.jobs) h.jobs_per_second = r.elapsed_s > 0 ? *h.jobs / r.elapsed_s : 0;
      h.db_statements = numberAt(stats, "/db_statements");
      if (h.db_statements && h.jobs && *h.jobs > 0) h.db_statements_per_job = *h.db_statements / *h.jobs;
      if (h.jobs && *h.jobs > 0) {
        h.cpu_server_us_per_job = ticksToSeconds(hostServerTicks[static_cast<std::size_t>(i)]) * 1e6 / *h.jobs;
        h.cpu_workers_us_per_job = ticksToSeconds(hostWorkerTicks[static_cast<std::size_t>(i)]) * 1e6 / *h.jobs;
      }
      h.handoff_p50_us = numberAt(stats, "/handoff/p50_us");
      h.handoff_p99_us = numberAt(stats, "/handoff/p99_us");
      r.db_statements = sumOf(r.db_statements, h.db_statements);
      r.handoff_p50_us = maxOf(r.handoff_p50_us, h.handoff_p50_us);
      r.handoff_p99_us = maxOf(r.handoff_p99_us, h.handoff_p99_us);
      r.handoff_p999_us = maxOf(r.handoff_p999_us, numberAt(stats, "/handoff/p999_us"));
      r.handoff_count = sumOf(r.handoff_count, numberAt(stats, "/handoff/count"));
      r.handoff_ahead_p50_us = maxOf(r.handoff_ahead_p50_us, numberAt(stats, "/handoff_ahead/p50_us"));
      r.handoff_ahead_p99_us = maxOf(r.handoff_ahead_p99_us, numberAt(stats, "/handoff_ahead/p99_us"));
      r.enqueue_to_start_p50_us = maxOf(r.enqueue_to_start_p50_us, numberAt(stats, "/enqueue_to_start/p50_us"));
      r.enqueue_to_start_p99_us = maxOf(r.enqueue_to_start_p99_us, numberAt(stats, "/enqueue_to_start/p99_us"));
      r.enqueue_to_start_p999_us = maxOf(r.enqueue_to_start_p999_us, numberAt(stats, "/enqueue_to_start/p999_us"));
      r.reservations = sumOf(r.reservations, numberAt(stats, "/reservations"));
      r.max_batch = maxOf(r.max_batch, numberAt(stats, "/max_batch"));
      const auto closed = numberAt(stats, "/held_batches/closed");
      r.held_batches = sumOf(r.held_batches, closed);
      r.held_open_ms_p50 = maxOf(r.held_open_ms_p50, numberAt(stats, "/held_batches/open_ms_p50"));
      r.held_open_ms_p99 = maxOf(r.held_open_ms_p99, numberAt(stats, "/held_batches/open_ms_p99"));
      if (const auto mean = numberAt(stats, "/held_batches/jobs_mean"); mean && closed)
        heldJobs = heldJobs.value_or(0) + *mean * *closed;
      r.held_promotions = sumOf(r.held_promotions, numberAt(stats, "/held_batches/promotions"));
      if (const auto n = workerJobCounts(*s)) {
        counts.insert(counts.end(), n->begin(), n->end());
        haveCounts = true;
      }
    }
    if (haveStats) r.db_statements_source = "server_stats";
    if (r.db_statements) r.db_statements_per_job = *r.db_statements / jobs;
    if (heldJobs && r.held_batches)
      r.held_jobs_per_batch = *r.held_batches > 0 ? *heldJobs / *r.held_batches : 0.0;
    if (haveCounts) {
      const Fairness f = computeFairness(r.elapsed_s, c.workers * hosts, counts);
      r.fairness_min_jobs = static_cast<double>(f.min_jobs);
      r.fairness_max_jobs = static_cast<double>(f.max_jobs);
      r.fairness_worst_gap_ratio = f.worst_gap_ratio;
      r.workers_served = f.workers_served;
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
