// The worker registry without a database: what it tells the reserver (WorkerJobs) as workers
// register, say goodbye, lose their connection while alive, come back, or die. Liveness is read
// from /proc, so the processes are real: this test's own, and forked children killed with -9.
#include "server/worker_registry.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using hostq::Transport;
using hostq::WorkerConfig;
using hostq::server::Gone;
using hostq::server::WorkerEntry;
using hostq::server::WorkerId;
using hostq::server::WorkerJobs;
using hostq::server::WorkerRegistry;
using SteadyClock = std::chrono::steady_clock;

/// The reserver's side, as a log of what it was told; `holding` says which workers hold jobs.
class JobsLog final : public WorkerJobs {
 public:
  void added(WorkerId id, const std::string& name, int, const WorkerConfig&, Transport t) override {
    log.push_back("added " + std::to_string(id) + " " + name + (t == Transport::Shm ? " shm" : " socket"));
  }
  void detached(WorkerId id) override { log.push_back("detached " + std::to_string(id)); }
  void reattached(WorkerId id, Transport) override { log.push_back("reattached " + std::to_string(id)); }
  void gone(WorkerId id, Gone how) override {
    log.push_back("gone " + std::to_string(id) + (how == Gone::Died ? " died" : " left"));
    holding.erase(id);
  }
  bool holdsAnything(WorkerId id) const override { return holding.count(id) > 0; }
  std::size_t jobsHeld(WorkerId id) const override { return holding.count(id); }

  std::vector<std::string> take() { return std::exchange(log, {}); }

  std::vector<std::string> log;
  std::map<WorkerId, bool> holding;
};

hostq::protocol::Hello hello(const std::string& name, hostq::protocol::Transport t = hostq::protocol::Transport::Shm,
                             const std::string& queue = "q") {
  hostq::protocol::Hello h;
  h.name = name;
  h.pid = 1;
  h.config.queue = queue;
  h.transport = t;
  return h;
}

/// A child that waits to be killed; its pid is a live process until kill().
struct Child {
  pid_t pid = ::fork();
  Child() {
    if (pid == 0) {
      for (;;) ::pause();
    }
  }
  void kill() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);  // reaped: /proc has no such process any more
    pid = -1;
  }
  ~Child() {
    if (pid > 0) kill();
  }
};

class Registry : public ::testing::Test {
 protected:
  JobsLog jobs;
  WorkerRegistry reg{jobs, 2, 60s};
};

TEST_F(Registry, RefusesBadHellos) {
  EXPECT_EQ(WorkerRegistry::refusal(hello("")), "bad worker name");
  EXPECT_EQ(WorkerRegistry::refusal(hello(std::string(256, 'x'))), "bad worker name");
  EXPECT_EQ(WorkerRegistry::refusal(hello("h:1", hostq::protocol::Transport::Shm, "")), "blank queue");
  auto h = hello("h:1");
  h.config.min_priority = 10;
  h.config.max_priority = 5;
  EXPECT_EQ(WorkerRegistry::refusal(h), "priority range outside 0..1000000");
  EXPECT_EQ(WorkerRegistry::refusal(hello("h:1")), std::nullopt);
  EXPECT_TRUE(WorkerRegistry::isMonitorName("monitor:stats"));
}

TEST_F(Registry, OneIdOwnsConnectionAndSlotUntilTheSlotsRunOut) {
  const WorkerEntry& a = reg.add(11, hello("h:1"), ::getpid());
  const WorkerEntry& b = reg.add(12, hello("h:2"), ::getpid());
  const WorkerEntry& c = reg.add(13, hello("h:3"), ::getpid());  // two slots only
  EXPECT_EQ(a.slot, 0u);
  EXPECT_EQ(b.slot, 1u);
  EXPECT_EQ(c.slot, std::nullopt);
  EXPECT_EQ(c.transport(), Transport::Socket);
  EXPECT_EQ(reg.byConn(12), reg.byId(b.id));
  EXPECT_EQ(reg.bySlot(0), reg.byId(a.id));
  EXPECT_EQ(reg.bySlot(1)->name, "h:2");
  EXPECT_EQ(reg.connectionNamed("h:3"), 13u);
  EXPECT_EQ(reg.connectionNamed("h:4"), std::nullopt);
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:1 shm", "added 1 h:2 shm", "added 2 h:3 socket"}));
}

TEST_F(Registry, GoodbyeIsLeftAndTheSlotIsReusedLast) {
  WorkerEntry& a = reg.add(11, hello("h:1"), ::getpid());
  a.goodbye = true;
  EXPECT_EQ(reg.closed(11, "goodbye"), 0u);
  EXPECT_EQ(reg.byConn(11), nullptr);
  EXPECT_EQ(reg.bySlot(0), nullptr);
  const WorkerEntry& b = reg.add(12, hello("h:2"), ::getpid());
  EXPECT_EQ(b.slot, 1u);  // slot 0 went to the back of the free list
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:1 shm", "gone 0 left", "added 0 h:2 shm"}));
}

TEST_F(Registry, EofWithNothingHeldIsDied) {
  reg.add(11, hello("h:1"), ::getpid());
  reg.closed(11, "eof");
  EXPECT_EQ(reg.size(), 0u);
  EXPECT_FALSE(reg.anyDetached());
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:1 shm", "gone 0 died"}));
}

TEST_F(Registry, ALiveProcessHoldingJobsIsDetachedAndComesBackUnderItsId) {
  const WorkerId id = reg.add(11, hello("h:1"), ::getpid()).id;
  jobs.holding[id] = true;
  reg.closed(11, "dropped");
  ASSERT_TRUE(reg.anyDetached());
  EXPECT_TRUE(reg.byId(id)->detached());
  EXPECT_EQ(reg.byConn(11), nullptr);
  reg.expire(SteadyClock::now(), true);  // alive and within its grace: kept
  EXPECT_TRUE(reg.anyDetached());
  const WorkerEntry& back = reg.add(12, hello("h:1", hostq::protocol::Transport::Socket), ::getpid());
  EXPECT_EQ(back.id, id);
  EXPECT_FALSE(back.detached());
  EXPECT_FALSE(reg.anyDetached());
  EXPECT_EQ(reg.byConn(12), reg.byId(id));
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:1 shm", "detached 0", "reattached 0"}));
}

TEST_F(Registry, ADetachedWorkerThatDiesIsGone) {
  Child child;
  const WorkerId id = reg.add(11, hello("h:9"), child.pid).id;
  jobs.holding[id] = true;
  reg.closed(11, "dropped");
  ASSERT_TRUE(reg.anyDetached());
  child.kill();
  reg.expire(SteadyClock::now(), true);
  EXPECT_FALSE(reg.anyDetached());
  EXPECT_EQ(reg.byId(id), nullptr);
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:9 shm", "detached 0", "gone 0 died"}));
}

TEST_F(Registry, AWorkerThatDiedBeforeItsEofIsNotDetached) {
  Child child;
  const WorkerId id = reg.add(11, hello("h:9"), child.pid).id;
  jobs.holding[id] = true;
  child.kill();
  reg.closed(11, "eof");
  EXPECT_FALSE(reg.anyDetached());
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:9 shm", "gone 0 died"}));
}

TEST_F(Registry, TheGraceRunsOut) {
  WorkerRegistry quick{jobs, 1, 0ms};
  const WorkerId id = quick.add(11, hello("h:1"), ::getpid()).id;
  jobs.holding[id] = true;
  quick.closed(11, "dropped");
  ASSERT_TRUE(quick.anyDetached());
  EXPECT_LE(quick.nextExpiry(), SteadyClock::now());
  quick.expire(SteadyClock::now() + 1ms);
  EXPECT_FALSE(quick.anyDetached());
  EXPECT_EQ(quick.nextExpiry(), SteadyClock::time_point::max());
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:1 shm", "detached 0", "gone 0 died"}));
}

TEST_F(Registry, BackWithAnotherConfigIsANewWorker) {
  const WorkerId id = reg.add(11, hello("h:1"), ::getpid()).id;
  jobs.holding[id] = true;
  reg.closed(11, "dropped");
  const WorkerEntry& again = reg.add(12, hello("h:1", hostq::protocol::Transport::Shm, "other"), ::getpid());
  EXPECT_FALSE(reg.anyDetached());
  EXPECT_EQ(again.config.queue, "other");
  EXPECT_EQ(jobs.take(), (std::vector<std::string>{"added 0 h:1 shm", "detached 0", "gone 0 died", "added 0 h:1 shm"}));
}

TEST_F(Registry, MonitorsAreNotWorkers) {
  reg.addMonitor(21);
  EXPECT_TRUE(reg.isMonitor(21));
  EXPECT_EQ(reg.byConn(21), nullptr);
  EXPECT_EQ(reg.closed(21, "eof"), std::nullopt);
  EXPECT_FALSE(reg.isMonitor(21));
  EXPECT_TRUE(jobs.take().empty());
}

}  // namespace
