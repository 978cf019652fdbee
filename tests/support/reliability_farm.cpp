#include "support/reliability_farm.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "common/json.hpp"
#include "common/proc_stat.hpp"
#include "support/server_harness.hpp"

namespace hostq::test::rel {

Farm::Farm(FarmOptions options) : m_o(std::move(options)) { m_socket = m_dir.file("s/hq.sock"); }

Farm::~Farm() { stop(std::chrono::seconds(5)); }

std::vector<std::string> Farm::common() const {
  return {"--database-url", m_o.database_url, "--schema", m_o.schema, "--socket", m_socket};
}

bool Farm::start(std::chrono::milliseconds timeout) {
  std::vector<std::string> args{"pool", "--workers", std::to_string(m_o.workers), "--builtin-handlers",
                                "--restart-grace", m_o.restart_grace, "--hostname", m_o.hostname};
  for (auto& a : common()) args.push_back(a);
  if (!m_o.transport.empty()) args.insert(args.end(), {"--transport", m_o.transport});
  if (!m_o.config_file.empty()) args.insert(args.end(), {"--config", m_o.config_file});
  args.insert(args.end(), m_o.extra.begin(), m_o.extra.end());
  std::vector<std::string> argv{hostqBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  // HOSTQ_TEST_FARM_LOG overrides the level (e.g. debug) when chasing a failure.
  const char* env_level = std::getenv("HOSTQ_TEST_FARM_LOG");
  const std::string level = env_level && *env_level ? env_level : m_o.log_level;
  // Its own process group: stop() can KILL everything the pool left behind.
  ExecOptions exec;
  exec.env = {{"HOSTQ_LOG_LEVEL", level}};
  exec.own_process_group = true;
  m_pool = Proc::exec(m_dir, "pool", argv, exec);
  return waitWorkers(m_o.workers, timeout);
}

void Farm::stop(std::chrono::milliseconds grace) {
  const pid_t group = m_pool.pid();
  if (group <= 0) return;
  // A test may have stopped a child; a stopped worker would hold up the graceful shutdown.
  ::kill(-group, SIGCONT);
  m_pool.signal(SIGQUIT);
  if (!m_pool.wait(grace)) {
    ::kill(-group, SIGKILL);
    m_pool.wait(std::chrono::seconds(5));
  }
  // Children the pool could not reap in time (or orphans of a killed pool).
  ::kill(-group, SIGKILL);
  m_pool = Proc();
}

std::optional<pid_t> Farm::serverPid() const {
  auto s = childrenOf(m_pool.pid(), "hostq server");
  if (s.empty()) return std::nullopt;
  return s.front();
}

std::vector<pid_t> Farm::workerPids() const { return childrenOf(m_pool.pid(), "hostq worker"); }

std::optional<pid_t> Farm::waitNewServer(pid_t old, std::chrono::milliseconds timeout) {
  std::optional<pid_t> now;
  waitUntil(
      [&] {
        auto s = stats();
        if (!s) return false;
        auto p = statNumber(*s, "server_pid");
        if (!p || static_cast<pid_t>(*p) == old) return false;
        now = static_cast<pid_t>(*p);
        return true;
      },
      timeout, kCostlyPoll);
  return now;
}

bool Farm::waitWorkers(int n, std::chrono::milliseconds timeout) {
  return waitUntil(
      [&] {
        auto s = stats();
        return s && static_cast<int>(statsWorkerPids(*s).size()) >= n;
      },
      timeout, kCostlyPoll);
}

std::optional<std::string> Farm::stats() const {
  std::vector<std::string> args{"stats", "--json", "--timeout", "2"};
  for (auto& a : common()) args.push_back(a);
  RunOptions o;
  o.timeout = std::chrono::seconds(10);
  auto r = runHostq(args, o);
  if (r.code != 0) return std::nullopt;
  return std::move(r.out);
}

std::string Farm::log() const {
  const std::string out = slurpFile(m_dir.file("pool.out"));
  return slurpFile(logPath()) + (out.empty() ? "" : "\nstdout:\n" + out);
}

std::vector<pid_t> childrenOf(pid_t parent, const std::string& comm) {
  std::vector<pid_t> out;
  if (parent <= 0) return out;
  for (const auto& p : childProcesses(parent))
    if (!p.zombie() && (comm.empty() || p.comm == comm)) out.push_back(static_cast<pid_t>(p.pid));
  return out;
}

bool processAlive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie is dead for our purposes.
  const auto s = readProcStat(pid);
  return !s || !s->zombie();
}

std::vector<AppendLine> readAppendFile(const std::string& path) {
  std::vector<AppendLine> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    out.push_back(AppendLine{std::stoll(line.substr(0, sp)), line.substr(sp + 1)});
  }
  return out;
}

std::size_t countLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::size_t n = 0;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    n += static_cast<std::size_t>(std::count(buf, buf + in.gcount(), '\n'));
    if (!in) break;
  }
  return n;
}

// ---- Sql ----------------------------------------------------------------------------------

Sql::Sql(std::string database_url, std::string schema) : m_url(std::move(database_url)), m_schema(std::move(schema)) {
  connect();
}

Sql::~Sql() = default;

void Sql::connect() {
  StoreOptions o;
  o.schema = m_schema;
  o.application_name = "hostq-test side";
  m_conn = std::make_unique<store::PgConnection>(m_url, o);
  m_conn->open();  // the store's session: search_path, TimeZone UTC
}

std::vector<std::string> Sql::column(const std::string& sql) {
  for (int attempt = 0;; ++attempt) {
    std::string msg;
    try {
      const auto r = m_conn->simple(sql, store::Phase::Write);
      std::vector<std::string> out;
      if (r.columns() > 0) {
        for (int i = 0; i < r.rows(); ++i) out.push_back(r.isNull(i, 0) ? "NULL" : r.str(i, 0));
      }
      return out;
    } catch (const DbError& e) {
      msg = e.what();
    }
    if (!m_conn->ok() && attempt < 1) {
      // A restarted database: connect again (with a deadline) and retry once.
      waitUntil(
          [&] {
            try {
              connect();
              return true;
            } catch (const std::exception&) {
              return false;
            }
          },
          std::chrono::seconds(20), std::chrono::milliseconds(100));
      continue;
    }
    throw std::runtime_error("test query failed: " + sql + ": " + msg);
  }
}

std::string Sql::value(const std::string& sql) {
  auto c = column(sql);
  return c.empty() ? std::string() : c.front();
}

std::int64_t Sql::integer(const std::string& sql) { return std::stoll(value(sql)); }

std::vector<std::int64_t> Sql::ids(const std::string& sql) {
  std::vector<std::int64_t> out;
  for (auto& s : column(sql)) out.push_back(std::stoll(s));
  return out;
}

// ---- audit --------------------------------------------------------------------------------

std::string Audit::summary() const {
  std::ostringstream o;
  o << "enqueued=" << enqueued << " ran_once=" << ran_once << " ran_more=" << ran_twice_or_more
    << " in_delayed=" << in_delayed << " in_failed=" << in_failed << " lost=" << lost
    << " stuck_locked=" << stuck_locked << " unexplained_duplicates=" << unexplained_duplicates
    << " unknown_lines=" << unknown_lines << " failed_without_reason=" << failed_without_reason;
  for (auto& p : problems) o << "\n  " << p;
  return o.str();
}

void expectEachRanOnce(const Audit& a, std::size_t jobs) {
  EXPECT_EQ(a.lost, 0u) << a.summary();
  EXPECT_EQ(a.ran_once, jobs) << a.summary();
  EXPECT_EQ(a.ran_twice_or_more, 0u) << a.summary();
  EXPECT_EQ(a.in_failed, 0u) << a.summary();
}

Audit audit(Sql& db, const std::vector<std::int64_t>& enqueued, const std::vector<AppendLine>& lines,
            const std::set<std::string>& killed) {
  Audit a;
  a.enqueued = enqueued.size();
  auto note = [&](std::string s) {
    if (a.problems.size() < 12) a.problems.push_back(std::move(s));
  };
  std::unordered_map<std::int64_t, std::vector<std::string>> runs;
  for (auto& l : lines) runs[l.id].push_back(l.worker);
  std::unordered_map<std::int64_t, std::string> delayed;  // id → locked_by
  for (auto& row : db.column("SELECT id || ' ' || coalesce(locked_by, '') FROM delayed_jobs")) {
    const auto sp = row.find(' ');
    delayed[std::stoll(row.substr(0, sp))] = row.substr(sp + 1);
  }
  std::unordered_map<std::int64_t, std::string> failed;  // original id → last_error
  for (auto& row : db.column("SELECT original_job_id || ' ' || coalesce(last_error, '') FROM failed_jobs")) {
    const auto sp = row.find(' ');
    failed[std::stoll(row.substr(0, sp))] = row.substr(sp + 1);
  }
  std::set<std::int64_t> known(enqueued.begin(), enqueued.end());
  for (auto& [id, r] : runs)
    if (!known.count(id)) {
      ++a.unknown_lines;
      note("line for id " + std::to_string(id) + " that was never enqueued");
    }
  for (std::int64_t id : enqueued) {
    auto it = runs.find(id);
    const std::size_t n = it == runs.end() ? 0 : it->second.size();
    if (n > 1) {
      std::size_t by_live = 0;
      for (auto& w : it->second) by_live += killed.count(w) == 0;
      if (by_live > 1) {
        ++a.unexplained_duplicates;
        std::string who;
        for (auto& w : it->second) who += " " + w;
        note("job " + std::to_string(id) + " ran " + std::to_string(n) + " times:" + who);
      }
    }
    if (auto d = delayed.find(id); d != delayed.end()) {
      ++a.in_delayed;
      const std::string& lb = d->second;
      const auto colon = lb.rfind(':');
      if (!lb.empty() && colon != std::string::npos && lb.rfind("prefetch:", 0) != 0) {
        const long pid = std::strtol(lb.c_str() + colon + 1, nullptr, 10);
        if (pid > 0 && !processAlive(static_cast<pid_t>(pid))) {
          ++a.stuck_locked;
          note("job " + std::to_string(id) + " locked by dead " + lb);
        }
      }
      continue;
    }
    if (auto f = failed.find(id); f != failed.end()) {
      ++a.in_failed;
      if (f->second.empty()) {
        ++a.failed_without_reason;
        note("job " + std::to_string(id) + " failed without a reason");
      }
      continue;
    }
    if (n == 0) {
      ++a.lost;
      note("job " + std::to_string(id) + " is gone but never ran");
    } else if (n == 1) {
      ++a.ran_once;
    } else {
      ++a.ran_twice_or_more;
    }
  }
  return a;
}

// ---- FarmTest -----------------------------------------------------------------------------

FarmOptions FarmTest::farmOptions(const std::string& hostname, int workers) const {
  FarmOptions o;
  o.database_url = url();
  o.schema = schema();
  o.hostname = hostname;
  o.workers = workers;
  return o;
}

std::int64_t lastJobId(Sql& db) {
  return db.integer(
      "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM delayed_jobs_id_seq");
}

std::vector<std::int64_t> FarmTest::enqueue(const std::string& tag, const std::string& payload, int count,
                                            const std::vector<std::string>& flags) const {
  Sql db(url(), schema());
  const std::int64_t before = lastJobId(db);
  std::vector<std::string> args{"enqueue", tag, payload, "--count", std::to_string(count),
                                "--database-url", url(), "--schema", schema()};
  args.insert(args.end(), flags.begin(), flags.end());
  RunOptions o;
  o.timeout = std::chrono::seconds(120);
  const auto r = runHostq(args, o);
  if (r.code != 0) {
    ADD_FAILURE() << "hostq enqueue failed: " << r.describe();
    return {};
  }
  std::vector<std::int64_t> ids;
  for (std::int64_t id = before + 1, last = lastJobId(db); id <= last; ++id) ids.push_back(id);
  if (ids.size() != static_cast<std::size_t>(count))
    ADD_FAILURE() << "enqueued " << count << " jobs but the id sequence moved by " << ids.size();
  return ids;
}

FarmTest::AppendBurn FarmTest::startAppendBurn(FarmOptions options, int jobs) const {
  AppendBurn b;
  b.farm = std::make_unique<Farm>(std::move(options));
  if (!b.farm->start()) {
    ADD_FAILURE() << "farm did not start\n" << b.farm->log();
    return b;
  }
  b.file = b.farm->dir() + "/append.txt";
  b.ids = enqueue("hostq.append", b.file, jobs);
  if (b.ids.size() != static_cast<std::size_t>(jobs)) {
    ADD_FAILURE() << "enqueued " << b.ids.size() << " of " << jobs;
    b.ids.clear();
  }
  return b;
}

bool FarmTest::waitBurnDown(std::chrono::milliseconds timeout) const {
  return waitUntil([&] { return remaining() == 0; }, timeout, std::chrono::milliseconds(100));
}

std::vector<std::int64_t> FarmTest::allIds() const {
  Sql db(url(), schema());
  return db.ids("SELECT id FROM delayed_jobs ORDER BY id");
}

}  // namespace hostq::test::rel
