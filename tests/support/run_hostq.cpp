#include "support/run_hostq.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "support/farm.hpp"

namespace hostq::test {

std::string hostqBinary() {
  if (const char* bin = std::getenv("HOSTQ_BIN"); bin && *bin) return bin;
  return HOSTQ_DEFAULT_BIN;
}

std::string RunResult::describe() const {
  return "exit " + std::to_string(code) + "\nstdout:\n" + out + "\nstderr:\n" + err;
}

std::vector<std::string> RunResult::lines() const {
  std::vector<std::string> v;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

RunResult runHostq(const std::vector<std::string>& args, const RunOptions& options) {
  ScratchDir dir;
  const std::string input = dir.file("in");
  std::ofstream(input, std::ios::binary) << options.input;
  std::vector<std::string> argv{hostqBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  ExecOptions exec;
  exec.env = options.env;
  exec.stdin_path = input;
  Proc p = Proc::exec(dir, "run", argv, exec);
  RunResult r;
  r.code = p.wait(options.timeout).value_or(-1);
  r.out = p.out();
  r.err = p.err();
  EXPECT_NE(r.code, 127) << "could not exec " << argv[0] << " (set HOSTQ_BIN)";
  return r;  // p's destructor kills it if it timed out, before `dir` goes
}

}  // namespace hostq::test
