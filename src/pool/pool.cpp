#include "hostq/pool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "common/log.hpp"
#include "common/signal_pipe.hpp"
#include "store/store.hpp"
#include "server/server.hpp"

namespace hostq {

namespace {

using Clock = std::chrono::steady_clock;

struct Child {
  enum class Kind { Server, Worker } kind = Kind::Worker;
  std::size_t entry = 0;  ///< index into settings.workers
  int index = 0;          ///< n-th worker of its entry
  Clock::time_point started{};
};

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "stopped";
}

void setTitle(const std::string& title) { ::prctl(PR_SET_NAME, title.substr(0, 15).c_str()); }

class PoolRunner {
 public:
  explicit PoolRunner(PoolOptions o) : m_o(std::move(o)), m_poolPid(::getpid()) {}

  int run() {
    try {
      m_signals.emplace({SIGQUIT, SIGTERM, SIGINT, SIGCHLD}, /*nonblocking_read=*/true);
    } catch (const std::exception& e) {
      spdlog::critical("pool: {}", e.what());
      return 1;
    }
    ::signal(SIGPIPE, SIG_IGN);
    if (m_o.settings.process_titles) setTitle("hostq pool");

    if (m_o.run_server) spawnServer();
    for (std::size_t e = 0; e < m_o.settings.workers.size(); ++e)
      for (int i = 0; i < std::max(1, m_o.settings.workers[e].config.workers); ++i) spawnWorker(e, i);
    spdlog::info("pool started: {} children", m_children.size());

    int stop_signal = 0;
    while (stop_signal == 0) {
      pollfd fd{m_signals->readFd(), POLLIN, 0};
      ::poll(&fd, 1, 1000);
      while (const auto sig = m_signals->next()) {
        if (*sig == SIGCHLD) continue;
        stop_signal = *sig;
      }
      reap(stop_signal == 0);
    }
    spdlog::info("pool: {} received, {} shutdown", strsignal(stop_signal),
                 stop_signal == SIGQUIT ? "graceful" : "fast");
    shutdown(stop_signal == SIGQUIT);
    m_signals.reset();
    return 0;
  }

 private:
  void childSetup(const std::string& title) {
    m_signals.reset();  // the child installs its own
    if (m_o.settings.process_titles) setTitle(title);
  }

  void spawnServer() {
    const pid_t pid = ::fork();
    if (pid < 0) {
      spdlog::error("fork server: {}", std::strerror(errno));
      return;
    }
    if (pid == 0) {
      childSetup("hostq server");
      log::init("server");
      server::ServerOptions so;
      so.settings = m_o.settings.server;
      so.database_url = m_o.settings.database_url;
      so.schema = m_o.schema;
      so.parent_pid = m_poolPid;
      int code = 1;
      try {
        code = server::runServer(so);
      } catch (const std::exception& e) {
        spdlog::critical("server died: {}", e.what());
      }
      ::_exit(code);
    }
    m_children[pid] = Child{Child::Kind::Server, 0, 0, Clock::now()};
  }

  void spawnWorker(std::size_t entry, int index) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      spdlog::error("fork worker: {}", std::strerror(errno));
      return;
    }
    if (pid == 0) {
      childSetup("hostq worker");
      log::init("worker");
      WorkerOptions wo;
      wo.settings = m_o.settings.workers[entry];
      wo.socket_path = m_o.settings.server.socket_path;
      wo.database_url = m_o.settings.database_url;
      wo.hostname = m_o.settings.server.hostname;
      wo.schema = m_o.schema;
      wo.handlers = m_o.handlers;
      if (wo.settings.builtin_handlers) wo.handlers.addBuiltins();
      wo.hooks = m_o.hooks;
      wo.default_max_attempts = m_o.settings.server.default_max_attempts;
      wo.keep_failed_jobs = m_o.settings.server.keep_failed_jobs;
      wo.parent_pid = m_poolPid;
      int code = 1;
      try {
        Worker w(std::move(wo));
        code = w.run();
      } catch (const std::exception& e) {
        spdlog::critical("worker died: {}", e.what());
      }
      ::_exit(code);
    }
    m_children[pid] = Child{Child::Kind::Worker, entry, index, Clock::now()};
  }

  /// Direct-mode workers have no server to notice their death: recover their job here, as
  /// inst-jobs' pool does before respawning (§3.7).
  void recoverDirectWorker(pid_t pid) {
    try {
      StoreOptions so;
      so.schema = m_o.schema;
      so.default_max_attempts = m_o.settings.server.default_max_attempts;
      so.keep_failed_jobs = m_o.settings.server.keep_failed_jobs;
      auto store = Store::connect(resolveDatabaseUrl(m_o.settings.database_url), so);
      const int n = store->unlockOrphanedJobs(resolveHostname(m_o.settings.server.hostname), pid);
      if (n > 0) spdlog::info("rescheduled {} job(s) of dead worker {}", n, pid);
    } catch (const std::exception& e) {
      spdlog::warn("recovering jobs of dead worker {}: {}", pid, e.what());
    }
  }

  void reap(bool respawn) {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it = m_children.find(pid);
      if (it == m_children.end()) continue;
      const Child c = it->second;
      m_children.erase(it);
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      const char* what = c.kind == Child::Kind::Server ? "server" : "worker";
      if (!respawn) {
        spdlog::info("{} {} {}", what, pid, describeStatus(status));
        continue;
      }
      spdlog::log(clean ? spdlog::level::info : spdlog::level::warn, "{} {} {}; restarting", what, pid,
                  describeStatus(status));
      // A child that dies right after start would otherwise be respawned in a tight loop.
      if (Clock::now() - c.started < std::chrono::seconds(1)) {
        pollfd fd{m_signals->readFd(), POLLIN, 0};
        ::poll(&fd, 1, 1000);
      }
      if (c.kind == Child::Kind::Server) {
        spawnServer();
      } else {
        if (m_o.settings.workers[c.entry].transport == Transport::Direct) recoverDirectWorker(pid);
        spawnWorker(c.entry, c.index);
      }
    }
  }

  std::size_t countKind(Child::Kind k) const {
    std::size_t n = 0;
    for (auto& [pid, c] : m_children) n += c.kind == k;
    return n;
  }

  void signalKind(Child::Kind k, int sig) {
    for (auto& [pid, c] : m_children)
      if (c.kind == k) ::kill(pid, sig);
  }

  /// Waits until no child of kind `k` is left or the deadline passes.
  bool waitKind(Child::Kind k, Clock::time_point deadline) {
    while (countKind(k) > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd fd{m_signals->readFd(), POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 200)));
      while (m_signals->next()) {
      }
      reap(false);
    }
    return true;
  }

  void shutdown(bool graceful) {
    const auto timeout = m_o.settings.slow_exit_timeout;
    // Workers first, so that their last results reach a live server; then the server, which
    // flushes them and gives back its prefetched jobs.
    signalKind(Child::Kind::Worker, graceful ? SIGQUIT : SIGTERM);
    if (!waitKind(Child::Kind::Worker, Clock::now() + timeout)) {
      spdlog::warn("workers still running after {} ms; sending TERM", timeout.count());
      signalKind(Child::Kind::Worker, SIGTERM);
      if (!waitKind(Child::Kind::Worker, Clock::now() + std::chrono::seconds(2))) {
        spdlog::warn("workers still running; sending KILL");
        signalKind(Child::Kind::Worker, SIGKILL);
        waitKind(Child::Kind::Worker, Clock::now() + std::chrono::seconds(2));
      }
    }
    signalKind(Child::Kind::Server, SIGTERM);
    if (!waitKind(Child::Kind::Server, Clock::now() + timeout)) {
      spdlog::warn("server still running after {} ms; sending KILL", timeout.count());
      signalKind(Child::Kind::Server, SIGKILL);
      waitKind(Child::Kind::Server, Clock::now() + std::chrono::seconds(2));
    }
  }

  PoolOptions m_o;
  pid_t m_poolPid;
  std::map<pid_t, Child> m_children;
  std::optional<SignalPipe> m_signals;  ///< SIGCHLD and the stop signals, read by the poll loops
};

}  // namespace

int runPool(PoolOptions options) { return PoolRunner(std::move(options)).run(); }

}  // namespace hostq
