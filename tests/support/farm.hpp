#pragma once
// Worker/pool tests: child processes (the `hostq` binary, or a fork running a function) with
// their output in files, and a scratch directory with a short socket path. A Proc that is still running when destroyed is killed (SIGKILL) and reaped, so a
// failing test leaves no worker behind.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/run_hostq.hpp"

namespace hostq::test {

/// A fresh directory under /tmp, removed on destruction. Short (socket paths stop at 107 bytes).
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return m_path; }
  std::string file(const std::string& name) const { return (m_path / name).string(); }

 private:
  std::filesystem::path m_path;
};

struct ExecOptions {
  EnvChanges env;          ///< changes to the inherited environment
  std::string stdin_path;  ///< empty: /dev/null
  /// The child leads a process group of its own, so that a test can kill everything it left
  /// behind (kill(-pid)).
  bool own_process_group = false;
  /// The child is killed when the test runner dies (PR_SET_PDEATHSIG), crash included.
  bool die_with_parent = false;
};

class Proc {
 public:
  Proc() = default;
  /// Runs `bin args…` with stdout/stderr to `<dir>/<label>.out|.err`.
  static Proc exec(const ScratchDir& dir, const std::string& label, const std::vector<std::string>& argv,
                   const ExecOptions& options = {});
  /// Runs `argv` with stdout and stderr both appended to the file `log`.
  static Proc execLogged(const std::string& log, const std::vector<std::string>& argv,
                         const ExecOptions& options = {});
  /// Forks; the child redirects stdout/stderr likewise, runs `body` and _exit()s with its result.
  static Proc fork(const ScratchDir& dir, const std::string& label, std::function<int()> body);
  ~Proc();
  Proc(Proc&& o) noexcept { *this = std::move(o); }
  Proc& operator=(Proc&& o) noexcept;

  pid_t pid() const { return m_pid; }
  bool running();
  void signal(int sig) const;
  /// Waits for the exit; returns the exit code, 128+signal if killed, nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  /// The signal that ended it, once it has ended by one.
  std::optional<int> termSignal() const { return m_signal; }
  std::string out() const;
  std::string err() const;
  /// Exit status and both outputs, for failure messages.
  std::string describe() const;

 private:
  static Proc spawn(const std::string& out, const std::string& err, const std::vector<std::string>& argv,
                    const ExecOptions& options);
  pid_t m_pid = -1;
  std::optional<int> m_code;
  std::optional<int> m_signal;
  std::string m_out, m_err;
};

std::string slurpFile(const std::string& path);

}  // namespace hostq::test
