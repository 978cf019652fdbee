#pragma once
// Worker/pool tests: child processes (the `hostq` binary, or a fork running a function) with
// their output in files, a scratch directory with a short socket path, and `hostq` run to
// completion. A Proc that is still running when destroyed is killed (SIGKILL) and reaped, so a
// failing test leaves no worker behind.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hostq::test {

/// The hostq binary under test: $HOSTQ_BIN, else the one in the build tree (server_harness.cpp).
std::string hostqBinary();

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

class Proc {
 public:
  Proc() = default;
  /// Runs `bin args…` with stdout/stderr to `<dir>/<label>.out|.err`; `env` adds variables.
  static Proc exec(const ScratchDir& dir, const std::string& label, const std::vector<std::string>& argv,
                   const std::vector<std::pair<std::string, std::string>>& env = {});
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
  std::string out() const;
  std::string err() const;
  /// Exit status and both outputs, for failure messages.
  std::string describe() const;

 private:
  pid_t m_pid = -1;
  std::optional<int> m_code;
  std::string m_out, m_err;
};

struct RunResult {
  int code = -1;
  std::string out, err;
};
/// Runs hostq with `args` to completion (bounded by `timeout`; killed then, code -1).
RunResult runHostq(const ScratchDir& dir, const std::vector<std::string>& args,
                   std::chrono::milliseconds timeout = std::chrono::seconds(60));

std::string slurpFile(const std::string& path);

}  // namespace hostq::test
