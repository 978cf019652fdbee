// The idle hook of a real `hostq server`: what environment and signal dispositions its command
// gets, and that the server collects its processes.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "common/proc_stat.hpp"
#include "support/farm.hpp"
#include "support/scoped_env.hpp"
#include "support/server_harness.hpp"
#include "support/wait.hpp"

namespace hostq {
namespace {

using namespace std::chrono_literals;
using test::waitUntil;

/// "pid state" of every process whose parent is `parent`.
std::vector<std::string> childrenOf(pid_t parent) {
  std::vector<std::string> out;
  for (const auto& p : childProcesses(parent)) out.push_back(std::to_string(p.pid) + " " + p.state);
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += e + "\n";
  return s;
}

class IdleHook : public test::ServerTest {};

TEST_F(IdleHook, RunsWithTheServersEnvironmentAndDefaultSignalsAndIsReaped) {
  const std::string marks = dir() + "/marks";
  // The hook sees the server's environment, with HOSTQ_IDLE replaced rather than inherited.
  test::ScopedEnv inherited("HOSTQ_TEST_INHERITED", "from-the-server");
  test::ScopedEnv stale("HOSTQ_IDLE", "stale");
  auto server = startServer(
      {"--idle-hook", "printf '%s %s %s\\n' \"$HOSTQ_IDLE\" \"$HOSTQ_TEST_INHERITED\" "
                      "\"$(grep SigIgn /proc/$$/status | cut -f2)\" >> " + marks});
  ASSERT_TRUE(server.running());
  store->enqueue(job("hostq.noop"));
  auto worker = startWorker();
  std::vector<std::string> lines;
  ASSERT_TRUE(waitUntil([&] {
    std::istringstream in(test::slurpFile(marks));
    lines.clear();
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines.size() >= 2;
  }, 20s)) << "marks:\n" << test::slurpFile(marks) << server.log();
  // Busy then idle, but the two hooks run side by side: either may write first.
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines[0].substr(0, 18), "0 from-the-server ") << lines[0];
  EXPECT_EQ(lines[1].substr(0, 18), "1 from-the-server ") << lines[1];
  for (const auto& l : lines) {
    // A shell started by a server that ignores SIGPIPE (and, before, SIGCHLD) would inherit
    // those as ignored, for itself and every command it runs.
    const unsigned long long ignored = std::stoull(l.substr(l.rfind(' ') + 1), nullptr, 16);
    EXPECT_FALSE(ignored & (1ull << (SIGPIPE - 1))) << "SIGPIPE ignored in the hook: " << l;
    EXPECT_FALSE(ignored & (1ull << (SIGCHLD - 1))) << "SIGCHLD ignored in the hook: " << l;
  }
  // Both hooks have finished writing; the server waits for its children itself, so none stays
  // behind as a zombie (it forks nothing else).
  EXPECT_TRUE(waitUntil([&] { return childrenOf(server.pid()).empty(); }, 10s))
      << "children of the server:\n" << joined(childrenOf(server.pid()));
  worker.signal(SIGTERM);
  worker.wait(10s);
}

}  // namespace
}  // namespace hostq
