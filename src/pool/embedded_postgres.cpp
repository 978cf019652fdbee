#include "pool/embedded_postgres.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace hostq {

namespace fs = std::filesystem;

namespace {

bool isExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// "15" < "16", "9.6" < "10": numeric, component by component (sort -V for these names).
std::vector<int> versionOf(const std::string& name) {
  std::vector<int> v;
  std::istringstream in(name);
  for (std::string part; std::getline(in, part, '.');) {
    char* end = nullptr;
    const long n = std::strtol(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0') return {};
    v.push_back(static_cast<int>(n));
  }
  return v;
}

std::string tail(const std::string& path, std::size_t maxBytes = 2000) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.size() > maxBytes) text = "…" + text.substr(text.size() - maxBytes);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string percentEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// fork + exec with stdin from /dev/null and stdout/stderr appended to `logPath`; returns the
// exit status (-1 if it did not exit normally). Everything the child touches is prepared
// before fork(): in a multi-threaded parent only async-signal-safe calls are allowed there.
int runLogged(const std::vector<std::string>& args, const std::string& logPath, const std::string& cwd,
              const RunAs& as) {
  std::vector<std::string> argStore = args;
  std::vector<char*> argv;
  for (auto& a : argStore) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    if (as.drop) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(as.gid) != 0 || ::setuid(as.uid) != 0) ::_exit(120);
    }
    // initdb and postgres insist on a current directory they can read.
    if (::chdir(cwd.c_str()) != 0) ::_exit(121);
    const int in = ::open("/dev/null", O_RDONLY);
    const int log = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || log < 0) ::_exit(122);
    ::dup2(in, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    // Whatever the caller has open (a test harness's pipe, a listening socket) must not live on
    // in the postmaster, which outlives this child by design.
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string EmbeddedPostgres::findBinDir() {
  if (FILE* p = ::popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[4096] = {};
    const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
    ::pclose(p);
    std::string dir = got ? buf : "";
    while (!dir.empty() && (dir.back() == '\n' || dir.back() == ' ')) dir.pop_back();
    if (!dir.empty() && isExecutable(dir + "/initdb")) return dir;
  }
  std::string best;
  std::vector<int> bestVersion;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const auto version = versionOf(entry.path().filename().string());
    const std::string bin = (entry.path() / "bin").string();
    if (!version.empty() && version > bestVersion && isExecutable(bin + "/initdb")) {
      best = bin;
      bestVersion = version;
    }
  }
  return best;
}

std::unique_ptr<EmbeddedPostgres> EmbeddedPostgres::start(const Options& options) {
  std::unique_ptr<EmbeddedPostgres> pg(new EmbeddedPostgres);
  pg->m_bin = findBinDir();
  if (pg->m_bin.empty()) {
    throw std::runtime_error(
        "embedded PostgreSQL: no initdb found (pg_config --bindir, /usr/lib/postgresql/*/bin); install postgresql "
        "or pass a database URL");
  }

  std::string tmpl = options.parent_dir + "/hostq-pg.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("embedded PostgreSQL: mkdtemp in " + options.parent_dir + ": " + std::strerror(errno));
  }
  // From here on the destructor cleans up whatever exists, on every exit path.
  pg->m_dir = tmpl;
  const std::string data = pg->m_dir + "/data";
  if (pg->m_dir.size() + 20 > 107) {
    throw std::runtime_error("embedded PostgreSQL: " + pg->m_dir + " is too long for a Unix socket path");
  }

  RunAs as;
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      throw std::runtime_error("embedded PostgreSQL: running as root and there is no \"postgres\" user to run it as");
    }
    as = RunAs{true, pw->pw_uid, pw->pw_gid};
    if (::chown(pg->m_dir.c_str(), as.uid, as.gid) != 0) {
      throw std::runtime_error("embedded PostgreSQL: chown " + pg->m_dir + ": " + std::strerror(errno));
    }
  }
  ::chmod(pg->m_dir.c_str(), 0700);
  pg->m_asPostgresUser = as.drop;
  pg->m_uid = as.uid;
  pg->m_gid = as.gid;

  const std::string initdbLog = pg->m_dir + "/initdb.log";
  // --no-sync skips only initdb's final flush of the fresh data directory, which a crash would
  // throw away along with the rest of a temporary cluster; the server itself runs with fsync on.
  if (runLogged({pg->m_bin + "/initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                 "--no-sync"},
                initdbLog, pg->m_dir, as) != 0) {
    throw std::runtime_error("embedded PostgreSQL: initdb failed: " + tail(initdbLog));
  }

  {
    std::ofstream conf(data + "/postgresql.conf", std::ios::app);
    conf << "\n# hostq embedded cluster\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << pg->m_dir << "'\n"
         << "max_connections = " << options.max_connections << "\n"
         << "log_min_messages = warning\n";
    if (!conf) throw std::runtime_error("embedded PostgreSQL: cannot write " + data + "/postgresql.conf");
  }

  const std::string ctlLog = pg->m_dir + "/pg_ctl.log";
  if (runLogged({pg->m_bin + "/pg_ctl", "-D", data, "-l", pg->m_dir + "/server.log", "-w", "-t", "60", "start"},
                ctlLog, pg->m_dir, as) != 0) {
    throw std::runtime_error("embedded PostgreSQL: server did not start: " + tail(pg->m_dir + "/server.log"));
  }
  pg->m_url = "postgresql:///postgres?host=" + percentEncode(pg->m_dir) + "&user=postgres";
  return pg;
}

EmbeddedPostgres::~EmbeddedPostgres() { stop(); }

void EmbeddedPostgres::stop() noexcept {
  if (m_dir.empty()) return;
  try {
    const std::string data = m_dir + "/data";
    // postmaster.pid exists from start until a clean shutdown: also covers a start that timed
    // out with the server half up.
    if (fs::exists(data + "/postmaster.pid")) {
      const RunAs as{m_asPostgresUser, m_uid, m_gid};
      const std::string log = m_dir + "/pg_ctl.log";
      if (runLogged({m_bin + "/pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop"}, log, m_dir, as) != 0) {
        runLogged({m_bin + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"}, log, m_dir, as);
      }
    }
  } catch (...) {
    // Removing the directory below still takes the socket away; nothing more to do here.
  }
  std::error_code ec;
  fs::remove_all(m_dir, ec);
  m_dir.clear();
}

}  // namespace hostq
