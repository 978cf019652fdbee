// Control plane with real processes: registration, long poll, fd passing, interruption, a dead
// client, many clients at once, and a server that refuses jobs not meant for the worker.
#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <sys/mman.h>

#include <thread>

#include "control/backoff.hpp"
#include "control/control_client.hpp"
#include "control/control_server.hpp"
#include "support/control_harness.hpp"

namespace hostq::control {
namespace {

using namespace std::chrono_literals;
using test::FakeOwner;
using test::forkChild;
using test::helloFor;
using test::waitChild;
using test::waitUntil;

struct ServerFixture : ::testing::Test, test::FakeControlServer {};

TEST_F(ServerFixture, WorkerRegistersAndGetsAJobOverTheSocket) {
  start();
  pid_t pid = forkChild([&] {
    ControlClient c;
    if (!c.connect(dir.sock(), 2s)) return 1;
    auto h = c.hello(helloFor("host:" + std::to_string(::getpid())), 2s);
    if (!h || h->ok.slot || h->segment_fd) return 2;
    if (!c.send(protocol::Reserve{7, 123})) return 3;
    auto r = c.receive(3s);
    if (r.kind != ControlClient::Received::Kind::Message) return 4;
    auto* job = std::get_if<protocol::JobAssigned>(&*r.message);
    if (!job || job->request_seq != 7 || job->locked_by != "host:" + std::to_string(::getpid())) return 5;
    if (job->payload != "payload-" + std::to_string(job->id)) return 6;
    if (!c.send(protocol::Complete{job->id, 1}) || !c.send(protocol::Goodbye{})) return 7;
    return 0;
  });
  EXPECT_EQ(waitChild(pid), 0);
  ASSERT_TRUE(waitUntil([&] { return owner.disconnectCount() == 1; }, 5s));
  EXPECT_EQ(owner.completeCount(), 1);
  EXPECT_EQ(owner.disconnectReasons().begin()->second, "goodbye");
}

TEST_F(ServerFixture, HelloOkPassesAUsableSegmentFdInOrderWithLaterFrames) {
  owner.segmentFd = [](const protocol::Hello& h) {
    int fd = ::memfd_create("hostq-test-seg", MFD_CLOEXEC);
    std::string content = "segment for " + h.name;
    if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) return -1;
    return fd;
  };
  // Frames queued right behind HelloOk must not overtake it or carry the fd.
  owner.afterAccept = [&](ConnId id) {
    server->send(id, protocol::Notice{protocol::NoticeKind::Drain, "after hello"});
    server->send(id, protocol::StatsReply{std::string(2 << 20, 's')});
  };
  start();
  pid_t pid = forkChild([&] {
    ControlClient c;
    if (!c.connect(dir.sock(), 2s)) return 1;
    auto h = c.hello(helloFor("w:1", protocol::Transport::Shm), 3s);
    if (!h) return 2;
    if (!h->ok.slot || !h->segment_fd) return 3;
    char buf[64] = {};
    ssize_t n = ::pread(h->segment_fd.get(), buf, sizeof buf - 1, 0);
    if (n <= 0 || std::string(buf, static_cast<std::size_t>(n)) != "segment for w:1") return 4;
    auto r1 = c.receive(3s);
    if (r1.kind != ControlClient::Received::Kind::Message || !std::holds_alternative<protocol::Notice>(*r1.message)) return 5;
    auto r2 = c.receive(3s);
    if (r2.kind != ControlClient::Received::Kind::Message) return 6;
    auto* stats = std::get_if<protocol::StatsReply>(&*r2.message);
    if (!stats || stats->json.size() != (2u << 20)) return 7;
    return 0;
  });
  EXPECT_EQ(waitChild(pid), 0);
}

TEST_F(ServerFixture, TwoHundredClientsRegisteringAtOnceAllGetAJob) {
  start();
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  std::vector<pid_t> kids;
  for (int i = 0; i < 200; ++i) {
    kids.push_back(forkChild([&] {
      ::close(gate[1]);
      char x;
      if (::read(gate[0], &x, 1) != 0) return 10;  // released together when the parent closes it
      ControlClient c;
      Backoff backoff;
      for (;;) {
        auto s = c.connect(dir.sock(), 3s);
        if (s) break;
        if (backoff.attempts() > 20) return 1;
        std::this_thread::sleep_for(backoff.next());
      }
      auto h = c.hello(helloFor("w:" + std::to_string(::getpid())), 5s);
      if (!h) return 2;
      if (!c.send(protocol::Reserve{1, 0})) return 3;
      auto r = c.receive(5s);
      if (r.kind != ControlClient::Received::Kind::Message) return 4;
      return std::holds_alternative<protocol::JobAssigned>(*r.message) ? 0 : 5;
    }));
  }
  ::close(gate[0]);
  ::close(gate[1]);
  int ok = 0;
  for (pid_t k : kids) ok += waitChild(k, 9s) == 0;
  EXPECT_EQ(ok, 200);
  EXPECT_EQ(owner.helloCount(), 200);
  EXPECT_TRUE(waitUntil([&] { return owner.disconnectCount() == 200; }, 5s));
}

TEST_F(ServerFixture, ServerSeesAClientKilledMidRequest) {
  owner.hold = true;
  start();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = forkChild([&] {
    ControlClient c;
    if (!c.connect(dir.sock(), 2s) || !c.hello(helloFor("victim:1"), 2s)) return 1;
    if (!c.send(protocol::Reserve{1, 0})) return 2;
    char x = 'r';
    if (::write(ready[1], &x, 1) != 1) return 3;
    c.receive(kForever);  // long poll: killed here
    return 4;
  });
  ::close(ready[1]);
  char x;
  ASSERT_EQ(::read(ready[0], &x, 1), 1);
  ASSERT_TRUE(waitUntil([&] { return owner.reserveCount() == 1; }, 5s));
  ::kill(pid, SIGKILL);
  EXPECT_EQ(waitChild(pid), 128 + SIGKILL);
  ASSERT_TRUE(waitUntil([&] { return owner.disconnectCount() == 1; }, 5s));
  EXPECT_NE(owner.disconnectReasons().begin()->second.find("peer closed"), std::string::npos);
  // Sending to the dead connection is harmless.
  server->send(owner.disconnectReasons().begin()->first, protocol::Notice{});
  ::close(ready[0]);
}

TEST_F(ServerFixture, InterruptWakesALongPollAndResetsTheConnection) {
  owner.hold = true;
  start();
  ControlClient c;
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(helloFor("w:int"), 2s));
  ASSERT_TRUE(c.send(protocol::Reserve{5, 0}));
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::thread waker([&] {
    waitUntil([&] { return owner.reserveCount() == 1; }, 5s);
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(efd, &one, sizeof one);
  });
  auto r = c.receive(kForever, efd);
  waker.join();
  EXPECT_EQ(r.kind, ControlClient::Received::Kind::Interrupted);
  EXPECT_FALSE(c.connected()) << "a pending Reserve must not leave a stale reply behind";
  EXPECT_TRUE(waitUntil([&] { return owner.disconnectCount() == 1; }, 5s));

  // Without a pending request an interrupt keeps the connection.
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(helloFor("w:int"), 2s));
  auto r2 = c.receive(kForever, efd);
  EXPECT_EQ(r2.kind, ControlClient::Received::Kind::Interrupted);
  EXPECT_TRUE(c.connected());
  ::close(efd);
}

struct WrongJobOwner : FakeOwner {
  void onMessage(ConnId id, protocol::Message m) override {
    if (auto* r = std::get_if<protocol::Reserve>(&m)) {
      protocol::JobAssigned job;
      job.id = 1;
      job.locked_by = "someone-else:1";
      job.request_seq = r->request_seq;
      server->send(id, job);
    }
  }
};

TEST(ControlClient, AJobNotLockedForThisWorkerIsAProtocolErrorThatResetsTheConnection) {
  test::TempSocketDir dir;
  WrongJobOwner owner;
  ControlServerOptions o;
  o.socket_path = dir.sock();
  ControlServer server(o, owner);
  owner.server = &server;
  server.start();
  ControlClient c;
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(helloFor("me:1"), 2s));
  ASSERT_TRUE(c.send(protocol::Reserve{1, 0}));
  auto r = c.receive(3s);
  EXPECT_EQ(r.kind, ControlClient::Received::Kind::Error);
  EXPECT_EQ(r.error.kind, ClientError::Kind::Protocol);
  EXPECT_NE(r.error.detail.find("someone-else"), std::string::npos) << r.error.describe();
  EXPECT_FALSE(c.connected());
  EXPECT_TRUE(waitUntil([&] { return owner.disconnectCount() == 1; }, 5s));
  server.stop();
}

TEST_F(ServerFixture, SecondReserveWhileOneIsOutstandingIsRefusedLocally) {
  owner.hold = true;
  start();
  ControlClient c;
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(helloFor("w:2"), 2s));
  ASSERT_TRUE(c.send(protocol::Reserve{1, 0}));
  auto s = c.send(protocol::Reserve{2, 0});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ClientError::Kind::Usage);
}

TEST_F(ServerFixture, BroadcastReachesEveryAcceptedWorker) {
  start();
  std::vector<ControlClient> clients(5);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(clients[i].connect(dir.sock(), 2s));
    ASSERT_TRUE(clients[i].hello(helloFor("b:" + std::to_string(i)), 2s));
  }
  server->broadcast(protocol::Notice{protocol::NoticeKind::Stop, "shutdown"});
  for (auto& c : clients) {
    auto r = c.receive(3s);
    ASSERT_EQ(r.kind, ControlClient::Received::Kind::Message);
    EXPECT_EQ(std::get<protocol::Notice>(*r.message), (protocol::Notice{protocol::NoticeKind::Stop, "shutdown"}));
  }
}

TEST_F(ServerFixture, APeerThatStopsReadingIsDroppedNotBuffered) {
  ControlServerOptions o;
  o.max_write_queue_bytes = 4 << 20;
  o.write_timeout = 1000ms;
  start(o);
  ControlClient c;
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(helloFor("deaf:1"), 2s));
  ASSERT_TRUE(waitUntil([&] { return owner.helloCount() == 1; }, 2s));
  ConnId id = 0;  // ids start at 1 and this is the only connection
  for (int i = 0; i < 16; ++i) server->send(id + 1, protocol::StatsReply{std::string(1 << 20, 'x')});
  ASSERT_TRUE(waitUntil([&] { return owner.disconnectCount() == 1; }, 5s));
  auto reason = owner.disconnectReasons().begin()->second;
  EXPECT_TRUE(reason.find("not reading") != std::string::npos || reason.find("has not read") != std::string::npos)
      << reason;
}

TEST(Backoff, GrowsExponentiallyWithJitterUpToTheCapAndResets) {
  Backoff b(Backoff::Options{10ms, 200ms, 2.0, 0.5}, 42);
  std::vector<std::chrono::milliseconds> d;
  for (int i = 0; i < 10; ++i) d.push_back(b.next());
  EXPECT_GE(d[0], 5ms);
  EXPECT_LE(d[0], 10ms);
  EXPECT_GE(d[3], 40ms);
  EXPECT_LE(d[3], 80ms);
  for (int i = 5; i < 10; ++i) {
    EXPECT_GE(d[i], 100ms);
    EXPECT_LE(d[i], 200ms);
  }
  b.reset();
  EXPECT_LE(b.next(), 10ms);
  // Two workers with different seeds do not retry in lock-step.
  Backoff x(Backoff::Options{}, 1), y(Backoff::Options{}, 2);
  int same = 0;
  for (int i = 0; i < 8; ++i) same += x.next() == y.next();
  EXPECT_LT(same, 8);
}

}  // namespace
}  // namespace hostq::control
