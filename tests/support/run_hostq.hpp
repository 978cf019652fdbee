#pragma once
// Running the `hostq` binary under test to completion: the one helper every CLI, pool and
// reliability test uses. Output goes to files (no pipe to drain while it runs), the run is
// bounded by a timeout, and the binary comes from HOSTQ_BIN (set by scripts/test).
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace hostq::test {

/// The hostq binary under test: $HOSTQ_BIN, else the one in the build tree.
std::string hostqBinary();

/// Environment changes for a child: each entry sets a variable, or removes it when the value is
/// empty.
using EnvChanges = std::vector<std::pair<std::string, std::string>>;

struct RunResult {
  /// The exit code; 128+N when killed by signal N; -1 when it did not finish within the timeout
  /// (it is killed then).
  int code = -1;
  std::string out, err;
  /// Exit code and both outputs, for failure messages.
  std::string describe() const;
  /// stdout split into lines.
  std::vector<std::string> lines() const;
};

struct RunOptions {
  std::string input;  ///< stdin
  EnvChanges env;
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

/// Runs `hostq ARGS…` to completion. A binary that cannot be run at all (exit 127) fails the
/// test: the message says to set HOSTQ_BIN.
RunResult runHostq(const std::vector<std::string>& args, const RunOptions& options = {});

}  // namespace hostq::test
