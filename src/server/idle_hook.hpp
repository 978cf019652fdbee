#pragma once
// The `idle_hook` setting: a shell command run each time the host turns busy or idle, with
// HOSTQ_IDLE=1|0 in its environment. The server has threads, so the command is started with
// posix_spawn (nothing runs between fork and exec) and an environment built here rather than by
// setenv() in the child; its processes are reaped by pid from the server's loop, so no SIGCHLD
// disposition is needed and none is left a zombie.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace hostq::server {

class IdleHook {
 public:
  explicit IdleHook(std::string command) : m_command(std::move(command)) {}
  IdleHook(const IdleHook&) = delete;
  IdleHook& operator=(const IdleHook&) = delete;
  /// Reaps what has exited; hooks still running are left to init when the server exits.
  ~IdleHook();

  /// Starts `sh -c command` with HOSTQ_IDLE set. Does not wait for it.
  void run(bool idle);
  /// Collects hooks that have exited (waitpid WNOHANG on our own pids only: the server may have
  /// other children). Cheap when none is outstanding; otherwise at most every 100 ms.
  void reap(std::chrono::steady_clock::time_point now);
  /// Hooks started and not yet reaped.
  std::size_t outstanding() const noexcept { return m_running.size(); }

 private:
  void reapNow();

  std::string m_command;
  std::vector<pid_t> m_running;
  std::chrono::steady_clock::time_point m_nextReap{};
};

}  // namespace hostq::server
