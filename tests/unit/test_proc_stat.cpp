// The /proc/PID/stat reader: the parsing rules proc(5) makes hard (a comm with spaces and
// parentheses), and the reading of real processes (ourselves, a child, a zombie).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "common/proc_stat.hpp"
#include "common/process_probe.hpp"
#include "support/wait.hpp"

namespace hostq {
namespace {

using namespace std::chrono_literals;

// 52 fields as Linux 6.x prints them; comm holds ") (" and a space.
constexpr const char* kLine =
    "4242 (a) (b c) S 17 4242 4242 0 -1 4194368 120 0 0 0 31 7 5 3 20 0 1 0 987654 12345678 300 "
    "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

TEST(ProcStat, ParsesFieldsAfterTheLastParenthesis) {
  const auto s = parseProcStat(kLine);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->pid, 4242);
  EXPECT_EQ(s->comm, "a) (b c");
  EXPECT_EQ(s->state, 'S');
  EXPECT_EQ(s->ppid, 17);
  EXPECT_EQ(s->flags, 4194368u);
  EXPECT_EQ(s->utime, 31u);
  EXPECT_EQ(s->stime, 7u);
  EXPECT_EQ(s->ticks(), 38u);
  EXPECT_EQ(s->childTicks(), 8u);
  EXPECT_EQ(s->start_ticks, 987654u);
  EXPECT_FALSE(s->zombie());
  EXPECT_FALSE(s->exiting());
}

TEST(ProcStat, ExitingFromStateOrFlag) {
  std::string zombie = kLine;
  zombie.replace(zombie.find(" S "), 3, " Z ");
  EXPECT_TRUE(parseProcStat(zombie)->zombie());
  EXPECT_TRUE(parseProcStat(zombie)->exiting());
  std::string pfExiting = kLine;
  pfExiting.replace(pfExiting.find(" 4194368 "), 9, " 4194372 ");  // | PF_EXITING
  EXPECT_FALSE(parseProcStat(pfExiting)->zombie());
  EXPECT_TRUE(parseProcStat(pfExiting)->exiting());
}

TEST(ProcStat, RejectsWhatIsNotAStatLine) {
  EXPECT_FALSE(parseProcStat(""));
  EXPECT_FALSE(parseProcStat("4242 (comm"));
  EXPECT_FALSE(parseProcStat("4242 (comm) S 17 4242"));               // truncated before field 22
  EXPECT_FALSE(parseProcStat("x (comm) S 17 1 1 0 -1 0 0 0 0 0 1 1"));  // pid not a number
  std::string badNumber = kLine;
  badNumber.replace(badNumber.find(" 987654 "), 8, " 98x654 ");
  EXPECT_FALSE(parseProcStat(badNumber));
}

TEST(ProcStat, ReadsLiveProcessesAndTheirChildren) {
  const auto self = readProcStat(::getpid());
  ASSERT_TRUE(self);
  EXPECT_EQ(self->pid, ::getpid());
  EXPECT_EQ(self->ppid, ::getppid());
  EXPECT_GT(self->start_ticks, 0u);
  EXPECT_FALSE(readProcStat(0));

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  const auto kids = childProcesses(::getpid());
  EXPECT_TRUE(std::any_of(kids.begin(), kids.end(), [&](const ProcStat& p) { return p.pid == child; }));
  const auto identity = probeProcess(child);
  ASSERT_TRUE(identity);
  EXPECT_TRUE(stillRunning(child, *identity));

  ::kill(child, SIGKILL);
  // Not waited for yet: a zombie, which runs nothing any more.
  EXPECT_TRUE(test::waitUntil([&] {
    const auto s = readProcStat(child);
    return s && s->zombie();
  }, 10s));
  EXPECT_FALSE(stillRunning(child, *identity));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(readProcStat(child));
}

}  // namespace
}  // namespace hostq
