#include "support/reliability_farm.hpp"

#include <dirent.h>
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
#include "support/server_harness.hpp"

namespace hostq::test::rel {

using Clock = std::chrono::steady_clock;

bool pollUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() >= deadline) return cond();
    std::this_thread::sleep_for(interval);
  }
  return true;
}

std::string hostqBin() {
  const char* b = std::getenv("HOSTQ_BIN");
  return b && *b ? std::string(b) : std::string(HOSTQ_DEFAULT_BIN);
}

namespace {

/// Waits for a child with a deadline; the exit code, -signal, or nullopt on timeout.
std::optional<int> waitChild(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (auto pause = std::chrono::milliseconds(1);; pause = std::min(pause * 2, std::chrono::milliseconds(50))) {
    int st = 0;
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -1000;
    if (r < 0) return -1000;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
  }
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<char*> argvOf(std::vector<std::string>& v) {
  std::vector<char*> argv;
  for (auto& a : v) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

}  // namespace

int runHostq(const std::vector<std::string>& args, std::string* out, std::chrono::milliseconds timeout) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1000;
  const std::string bin = hostqBin();
  std::vector<std::string> argv_s{bin};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  auto argv = argvOf(argv_s);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    // stderr carries "no server yet" while a test polls; the exit code says it all.
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, 2);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string text;
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{pipefd[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto rc = waitChild(pid, std::max(left, std::chrono::milliseconds(0)) + std::chrono::milliseconds(100));
  if (!rc) {
    ::kill(pid, SIGKILL);
    rc = waitChild(pid, std::chrono::seconds(5)).value_or(-1000);
  }
  if (out) *out = std::move(text);
  return *rc;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/hqr.XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  m_path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(m_path, ec);
}

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
  const std::string bin = hostqBin();
  std::vector<std::string> argv_s{bin};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  auto argv = argvOf(argv_s);
  const std::string log = logPath();
  // HOSTQ_TEST_FARM_LOG overrides the level (e.g. debug) when chasing a failure.
  const char* env_level = std::getenv("HOSTQ_TEST_FARM_LOG");
  const std::string level = env_level && *env_level ? env_level : m_o.log_level;
  m_pool = ::fork();
  if (m_pool == 0) {
    ::setpgid(0, 0);  // one group: stop() can KILL everything the pool left behind
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::setenv("HOSTQ_LOG_LEVEL", level.c_str(), 1);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::setpgid(m_pool, m_pool);
  return waitWorkers(m_o.workers, timeout);
}

void Farm::stop(std::chrono::milliseconds grace) {
  if (m_pool <= 0) return;
  // A test may have stopped a child; a stopped worker would hold up the graceful shutdown.
  ::kill(-m_pool, SIGCONT);
  ::kill(m_pool, SIGQUIT);
  if (!waitChild(m_pool, grace)) {
    ::kill(-m_pool, SIGKILL);
    waitChild(m_pool, std::chrono::seconds(5));
  }
  // Children the pool could not reap in time (or orphans of a killed pool).
  ::kill(-m_pool, SIGKILL);
  m_pool = -1;
}

std::optional<pid_t> Farm::serverPid() const {
  auto s = childrenOf(m_pool, "hostq server");
  if (s.empty()) return std::nullopt;
  return s.front();
}

std::vector<pid_t> Farm::workerPids() const { return childrenOf(m_pool, "hostq worker"); }

std::optional<pid_t> Farm::waitNewServer(pid_t old, std::chrono::milliseconds timeout) {
  std::optional<pid_t> now;
  pollUntil(
      [&] {
        auto s = stats();
        if (!s) return false;
        auto p = statNumber(*s, "server_pid");
        if (!p || static_cast<pid_t>(*p) == old) return false;
        now = static_cast<pid_t>(*p);
        return true;
      },
      timeout);
  return now;
}

bool Farm::waitWorkers(int n, std::chrono::milliseconds timeout) {
  return pollUntil(
      [&] {
        auto s = stats();
        return s && static_cast<int>(jsonWorkerPids(*s).size()) >= n;
      },
      timeout);
}

std::optional<std::string> Farm::stats() const {
  std::vector<std::string> args{"stats", "--json", "--timeout", "2"};
  for (auto& a : common()) args.push_back(a);
  std::string out;
  if (runHostq(args, &out, std::chrono::seconds(10)) != 0) return std::nullopt;
  return out;
}

std::string Farm::log() const { return readFile(logPath()); }

std::vector<pid_t> jsonWorkerPids(const std::string& json) {
  std::vector<pid_t> out;
  const Json stats = parseJsonOrDiscard(json);
  if (!stats.is_object() || !stats.contains("workers") || !stats.at("workers").is_array()) return out;
  for (const auto& w : stats.at("workers"))
    if (w.is_object() && w.contains("pid") && w.at("pid").is_number_integer()) out.push_back(w.at("pid").get<pid_t>());
  return out;
}

std::vector<pid_t> childrenOf(pid_t parent, const std::string& comm) {
  std::vector<pid_t> out;
  if (parent <= 0) return out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    const std::string stat = readFile("/proc/" + std::string(e->d_name) + "/stat");
    const auto rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    std::istringstream rest(stat.substr(rp + 2));
    char state = 0;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent || state == 'Z') continue;
    if (!comm.empty()) {
      std::string c = readFile("/proc/" + std::string(e->d_name) + "/comm");
      while (!c.empty() && c.back() == '\n') c.pop_back();
      if (c != comm) continue;
    }
    out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

bool processAlive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie is dead for our purposes.
  const std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  const auto rp = stat.rfind(')');
  return rp == std::string::npos || rp + 2 >= stat.size() || stat[rp + 2] != 'Z';
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
      pollUntil(
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
  std::string out;
  const int rc = runHostq(args, &out, std::chrono::seconds(120));
  if (rc != 0) {
    ADD_FAILURE() << "hostq enqueue failed: " << out;
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
  return pollUntil([&] { return remaining() == 0; }, timeout, std::chrono::milliseconds(100));
}

std::vector<std::int64_t> FarmTest::allIds() const {
  Sql db(url(), schema());
  return db.ids("SELECT id FROM delayed_jobs ORDER BY id");
}

}  // namespace hostq::test::rel
