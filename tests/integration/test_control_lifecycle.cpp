// Server lifecycle: restart under waiting workers, stale socket files, and never stealing the
// socket of a live server.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

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
using Clock = std::chrono::steady_clock;

/// A server in its own process, so it can be SIGKILLed like a crashed daemon. Writes one byte
/// to `notify` per worker it has accepted.
pid_t forkServer(const std::string& path, std::uint64_t generation, bool hold, int notify) {
  return forkChild([=] {
    spdlog::flush_on(spdlog::level::trace);  // it dies by SIGKILL: nothing may sit in a buffer
    spdlog::set_level(spdlog::level::debug);
    FakeOwner owner;
    owner.generation = generation;
    owner.hold = hold;
    owner.afterAccept = [notify](ConnId) {
      char x = 'h';
      [[maybe_unused]] auto n = ::write(notify, &x, 1);
    };
    ControlServerOptions o;
    o.socket_path = path;
    ControlServer server(o, owner);
    owner.server = &server;
    server.start();
    for (;;) ::pause();
    return 0;
  });
}

bool readBytes(int fd, int count, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (count > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[64];
    ssize_t n = ::read(fd, buf, std::min<int>(count, sizeof buf));
    if (n <= 0) return false;
    count -= static_cast<int>(n);
  }
  return true;
}

TEST(ControlLifecycle, WorkersWaitingOnAKilledServerReconnectToItsSuccessor) {
  test::TempSocketDir dir;
  int notify[2];
  ASSERT_EQ(::pipe(notify), 0);
  constexpr int kWorkers = 8;
  pid_t first = forkServer(dir.sock(), 1, /*hold=*/true, notify[1]);

  std::vector<pid_t> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(forkChild([&, w] {
      ControlClient c;
      Backoff backoff;
      std::string name = "w" + std::to_string(w) + ":" + std::to_string(::getpid());
      auto deadline = Clock::now() + 8s;
      std::uint64_t seq = 0;
      while (Clock::now() < deadline) {
        if (!c.connected()) {
          if (!c.connect(dir.sock(), 1s)) {
            std::this_thread::sleep_for(backoff.next());  // no server yet (ENOENT/ECONNREFUSED)
            continue;
          }
          auto h = c.hello(helloFor(name), 2s);
          if (!h) {
            std::this_thread::sleep_for(backoff.next());
            continue;
          }
          backoff.reset();
          if (!c.send(protocol::Reserve{++seq, 0})) continue;
        }
        auto r = c.receive(1s);
        if (r.kind == ControlClient::Received::Kind::Message) {
          if (std::holds_alternative<protocol::JobAssigned>(*r.message)) return 0;  // only the 2nd server answers
          return 2;
        }
        if (r.kind == ControlClient::Received::Kind::Eof || r.kind == ControlClient::Received::Kind::Error)
          std::this_thread::sleep_for(backoff.next());
      }
      return 1;
    }));
  }
  ASSERT_TRUE(readBytes(notify[0], kWorkers, 5s)) << "workers did not all register with the first server";
  ::kill(first, SIGKILL);
  EXPECT_EQ(waitChild(first), 128 + SIGKILL);
  // The dead server left its socket file behind; the successor must replace it.
  struct stat st{};
  EXPECT_EQ(::lstat(dir.sock().c_str(), &st), 0);
  pid_t second = forkServer(dir.sock(), 2, /*hold=*/false, notify[1]);
  int ok = 0;
  for (pid_t w : workers) ok += waitChild(w, 9s) == 0;
  EXPECT_EQ(ok, kWorkers);
  ::kill(second, SIGKILL);
  waitChild(second);
  ::close(notify[0]);
  ::close(notify[1]);
}

/// What a crashed server leaves: a socket file nobody listens on.
void makeDeadSocketFile(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
}

std::string setupError(const ControlServerOptions& o) {
  FakeOwner owner;
  try {
    ControlServer s(o, owner);
  } catch (const ControlSetupError& e) {
    return e.what();
  }
  return "";
}

TEST(ControlLifecycle, AStaleSocketFileIsReplaced) {
  test::FakeControlServer s;
  const auto& dir = s.dir;
  makeDeadSocketFile(dir.sock());
  s.start();
  ControlClient c;
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(helloFor("w:1"), 2s));
  s.stop();
  struct stat st{};
  EXPECT_NE(::lstat(dir.sock().c_str(), &st), 0) << "a stopped server removes its own socket file";
}

TEST(ControlLifecycle, ALiveServersSocketIsNeverStolen) {
  test::FakeControlServer s;
  const auto& dir = s.dir;
  s.start();
  ControlServerOptions o;
  o.socket_path = dir.sock();

  auto err = setupError(o);  // same path, lock held by the live server
  EXPECT_NE(err.find("another server holds"), std::string::npos) << err;

  // A live listener that does not use our lock file (another build, another tool).
  test::TempSocketDir dir2;
  int lfd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, dir2.sock().c_str());
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  ControlServerOptions o2;
  o2.socket_path = dir2.sock();
  err = setupError(o2);
  EXPECT_NE(err.find("live server is listening"), std::string::npos) << err;
  ::close(lfd);

  // The first server still serves.
  ControlClient c;
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(helloFor("w:1"), 2s));
  ASSERT_TRUE(c.send(protocol::Reserve{1, 0}));
  EXPECT_EQ(c.receive(2s).kind, ControlClient::Received::Kind::Message);
}

TEST(ControlLifecycle, UnsafePathsAreRefusedWithAClearError) {
  test::TempSocketDir dir;
  ControlServerOptions o;
  o.socket_path = dir.sock();
  { std::ofstream(dir.sock()) << "not a socket"; }
  EXPECT_NE(setupError(o).find("is not a socket"), std::string::npos);
  ::unlink(dir.sock().c_str());

  ASSERT_EQ(::chmod(dir.dir.c_str(), 0770), 0);
  EXPECT_NE(setupError(o).find("writable by group or others"), std::string::npos);
  ASSERT_EQ(::chmod(dir.dir.c_str(), 0700), 0);

  o.socket_path = dir.dir + "/" + std::string(120, 'x');
  EXPECT_NE(setupError(o).find("longer than"), std::string::npos);

  // A missing directory is created private.
  o.socket_path = dir.dir + "/sub/ctl.sock";
  EXPECT_EQ(setupError(o), "");
  struct stat st{};
  ASSERT_EQ(::stat((dir.dir + "/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

}  // namespace
}  // namespace hostq::control
