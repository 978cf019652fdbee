#include "server/idle_hook.hpp"

#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

extern char** environ;

namespace hostq::server {

IdleHook::~IdleHook() { reapNow(); }

void IdleHook::run(bool idle) {
  if (m_command.empty()) return;
  // The server's environment with HOSTQ_IDLE replaced: built before the spawn, so the child
  // needs no allocation and the process-wide environment is never written.
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e)
    if (!std::string_view(*e).starts_with("HOSTQ_IDLE=")) env_strings.emplace_back(*e);
  env_strings.emplace_back(idle ? "HOSTQ_IDLE=1" : "HOSTQ_IDLE=0");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "sh", dash_c = "-c";
  char* argv[] = {sh.data(), dash_c.data(), m_command.data(), nullptr};

  // The server ignores SIGPIPE and may block signals in its threads; ignored dispositions and
  // the mask survive exec, and the hook is owed a default shell.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, empty;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGCHLD);
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, "/bin/sh", nullptr, &attr, argv, envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    spdlog::warn("idle hook: cannot start /bin/sh: {}", std::strerror(rc));
    return;
  }
  m_running.push_back(pid);
}

void IdleHook::reap(std::chrono::steady_clock::time_point now) {
  if (m_running.empty() || now < m_nextReap) return;
  m_nextReap = now + std::chrono::milliseconds(100);
  reapNow();
}

void IdleHook::reapNow() {
  std::erase_if(m_running, [](pid_t pid) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == 0) return false;
    // ECHILD: someone else collected it (a SIGCHLD ignored by whoever embeds the server).
    if (r == pid && WIFEXITED(status) && WEXITSTATUS(status) != 0)
      spdlog::debug("idle hook {} exited with status {}", pid, WEXITSTATUS(status));
    return r == pid || (r < 0 && errno == ECHILD);
  });
}

}  // namespace hostq::server
