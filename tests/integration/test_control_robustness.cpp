// Bad peers: garbage, oversize lengths, slow-loris, protocol violations and foreign users are
// each dropped with a reason while well-behaved workers keep getting replies.
#include <gtest/gtest.h>

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <thread>

#include "control/control_client.hpp"
#include "control/control_server.hpp"
#include "protocol/codec.hpp"
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

/// A deliberately dumb client: raw bytes in, everything until EOF out.
struct RawPeer {
  int fd = -1;
  explicit RawPeer(const std::string& path) {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ~RawPeer() {
    if (fd >= 0) ::close(fd);
  }
  bool write(const void* p, std::size_t n) { return ::send(fd, p, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n); }
  bool write(const std::vector<std::byte>& b) { return write(b.data(), b.size()); }
  bool write(const protocol::Message& m) { return write(protocol::encode(m).value()); }
  /// Reads until EOF or `timeout`; returns {eof seen, bytes}.
  std::pair<bool, std::vector<std::byte>> drain(std::chrono::milliseconds timeout) {
    std::vector<std::byte> all;
    auto deadline = Clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return {false, all};
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      std::byte buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return {true, all};
      all.insert(all.end(), buf, buf + n);
    }
  }
  /// The Error reason the server sent before closing, or "" if it sent none. Frames before it
  /// are skipped: a peer that said Hello may have been answered HelloOk first (whether it was
  /// depends on whether its next frame reached the server before the owner accepted the Hello).
  static std::string errorReason(const std::vector<std::byte>& bytes) {
    for (std::span<const std::byte> rest(bytes);;) {
      auto frame = protocol::nextFrame(rest);
      if (!frame) return "";
      auto m = protocol::decode(frame.value());
      if (!m) return "";
      if (auto* e = std::get_if<protocol::Error>(&m.value())) return e->reason;
    }
  }
};

std::vector<std::byte> header(std::uint32_t len, std::uint16_t type, std::uint16_t version) {
  std::vector<std::byte> b(8);
  for (int i = 0; i < 4; ++i) b[i] = std::byte((len >> (8 * i)) & 0xFF);
  b[4] = std::byte(type & 0xFF);
  b[5] = std::byte(type >> 8);
  b[6] = std::byte(version & 0xFF);
  b[7] = std::byte(version >> 8);
  return b;
}

struct BadPeerFixture : ::testing::Test, test::FakeControlServer {
  void SetUp() override {
    ControlServerOptions o;
    o.frame_timeout = 300ms;
    o.hello_timeout = 600ms;
    start(o);
  }

  /// Expects the server to close `p` within `within`, having said something containing `why`.
  void expectDropped(RawPeer& p, const std::string& why, std::chrono::milliseconds within = 3s) {
    auto [eof, bytes] = p.drain(within);
    EXPECT_TRUE(eof) << "server kept a bad peer open (" << why << ")";
    auto reason = RawPeer::errorReason(bytes);
    EXPECT_NE(reason.find(why), std::string::npos) << "expected '" << why << "', got '" << reason << "'";
  }
};

TEST_F(BadPeerFixture, BadPeersAreDroppedWhileEightWorkersKeepBeingServed) {
  // Eight workers in their own processes, long-polling in a loop until told to stop.
  int stop[2];
  ASSERT_EQ(::pipe(stop), 0);
  std::vector<pid_t> workers;
  for (int w = 0; w < 8; ++w) {
    workers.push_back(forkChild([&, w] {
      ::close(stop[1]);
      ControlClient c;
      std::string name = "good:" + std::to_string(w);
      if (!c.connect(dir.sock(), 2s) || !c.hello(helloFor(name), 2s)) return 1;
      int jobs = 0;
      for (std::uint64_t seq = 1;; ++seq) {
        pollfd p{stop[0], POLLIN, 0};
        if (::poll(&p, 1, 0) > 0) break;
        if (!c.send(protocol::Reserve{seq, 0})) return 2;
        auto r = c.receive(2s);  // a stalled server would show up here
        if (r.kind != ControlClient::Received::Kind::Message) return 3;
        auto* job = std::get_if<protocol::JobAssigned>(&*r.message);
        if (!job) return 4;
        if (!c.send(protocol::Complete{job->id, seq})) return 5;
        ++jobs;
      }
      return jobs > 10 ? 0 : 6;
    }));
  }
  ::close(stop[0]);
  ASSERT_TRUE(waitUntil([&] { return owner.completeCount() > 80; }, 5s));

  {
    RawPeer p(dir.sock());
    std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    p.write(http.data(), http.size());
    expectDropped(p, "frame too large");
  }
  {
    RawPeer p(dir.sock());
    std::vector<std::byte> junk(64);
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = std::byte((i * 37 + 11) & 0xFF);
    junk[0] = std::byte{4}, junk[1] = junk[2] = junk[3] = std::byte{0};  // small length, junk type
    p.write(junk);
    expectDropped(p, "unknown message type");
  }
  {
    RawPeer p(dir.sock());
    p.write(header(0xFFFFFFF0u, 0x01, protocol::kProtocolVersion));  // and no body at all
    expectDropped(p, "frame too large", 1s);
  }
  {
    RawPeer p(dir.sock());
    p.write(header(0, 0x05, 9));
    expectDropped(p, "unsupported protocol version");
  }
  {
    RawPeer p(dir.sock());
    p.write(header(0, 0x4242, protocol::kProtocolVersion));
    expectDropped(p, "unknown message type");
  }
  {  // slow-loris: three header bytes and then silence
    RawPeer p(dir.sock());
    auto t0 = Clock::now();
    p.write(header(12, 0x02, 1).data(), 3);
    expectDropped(p, "frame not completed");
    EXPECT_GE(Clock::now() - t0, 250ms);
  }
  {  // slow-loris that keeps the connection busy: one byte every 40 ms never finishes in time
    RawPeer p(dir.sock());
    ASSERT_TRUE(p.write(protocol::Message(helloFor("loris:1"))));
    auto frame = protocol::encode(protocol::Reserve{1, 2}).value();
    std::thread dribble([&] {
      for (auto b : frame) {
        if (!p.write(&b, 1)) return;
        std::this_thread::sleep_for(40ms);  // the pacing of the attack, not a wait for a condition
      }
    });
    auto [eof, bytes] = p.drain(3s);
    dribble.join();
    EXPECT_TRUE(eof);
  }
  {  // connects and never says Hello
    RawPeer p(dir.sock());
    expectDropped(p, "no Hello");
  }
  {
    RawPeer p(dir.sock());
    p.write(protocol::Message(protocol::Reserve{1, 2}));
    expectDropped(p, "expected Hello");
  }
  {
    RawPeer p(dir.sock());
    p.write(protocol::Message(helloFor("rogue:1")));
    protocol::JobAssigned forged;
    p.write(protocol::Message(forged));
    expectDropped(p, "may not send JobAssigned");
  }
  {
    RawPeer p(dir.sock());
    p.write(protocol::Message(helloFor("twice:1")));
    p.write(protocol::Message(helloFor("twice:1")));
    expectDropped(p, "second Hello");
  }
  {  // valid framing, invalid body: transport enum 7
    RawPeer p(dir.sock());
    auto b = protocol::encode(protocol::Message(helloFor("enum:1"))).value();
    b.back() = std::byte{7};
    p.write(b);
    expectDropped(p, "enum value out of range");
  }
  {  // a string length pointing past the body
    RawPeer p(dir.sock());
    auto b = protocol::encode(protocol::Message(helloFor("len:1"))).value();
    b[8] = std::byte{0xFF};
    p.write(b);
    expectDropped(p, "outside the body");
  }
  {  // half a frame and then gone: nothing to answer, the server just forgets it
    RawPeer p(dir.sock());
    auto b = protocol::encode(protocol::Message(helloFor("half:1"))).value();
    p.write(b.data(), b.size() / 2);
  }
  {  // idle after Hello for longer than the frame timeout is fine: long polls are long
    ControlClient c;
    ASSERT_TRUE(c.connect(dir.sock(), 2s));
    ASSERT_TRUE(c.hello(helloFor("idle:1"), 2s));
    EXPECT_EQ(c.receive(800ms).kind, ControlClient::Received::Kind::Timeout);
    ASSERT_TRUE(c.send(protocol::Reserve{1, 0}));
    auto r = c.receive(2s);
    ASSERT_EQ(r.kind, ControlClient::Received::Kind::Message);
    EXPECT_TRUE(std::holds_alternative<protocol::JobAssigned>(*r.message));
  }

  int before = owner.completeCount();
  EXPECT_TRUE(waitUntil([&] { return owner.completeCount() > before + 80; }, 5s)) << "workers stalled";
  ::close(stop[1]);
  for (pid_t w : workers) EXPECT_EQ(waitChild(w), 0);

  // The peers that got as far as Hello were reported to the owner with their reason.
  auto reasons = owner.disconnectReasons();
  int loris = 0, rogue = 0, twice = 0;
  for (auto& [id, r] : reasons) {
    loris += r.find("frame not completed") != std::string::npos;
    rogue += r.find("may not send") != std::string::npos;
    twice += r.find("second Hello") != std::string::npos;
  }
  EXPECT_EQ(loris, 1);
  EXPECT_EQ(rogue, 1);
  EXPECT_EQ(twice, 1);
}

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

/// Forks a child that drops to nobody:nogroup and runs `body`.
pid_t forkAsNobody(const std::function<int()>& body) {
  return forkChild([&] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNogroup) != 0 || ::setuid(kNobody) != 0) return 90;
    return body();
  });
}

TEST(ControlPeerCred, APeerOfAnotherUserIsRefusedEvenIfTheSocketModeLetsItConnect) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to fork a child running as another uid";
  test::FakeControlServer s;
  s.start();
  const auto& dir = s.dir;
  struct stat st{};
  ASSERT_EQ(::stat(dir.sock().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Loosen the file system permissions on purpose: the kernel-checked peer uid must still refuse.
  ASSERT_EQ(::chmod(dir.dir.c_str(), 0711), 0);
  ASSERT_EQ(::chmod(dir.sock().c_str(), 0666), 0);
  pid_t pid = forkAsNobody([&] {
    ControlClient c;
    if (!c.connect(dir.sock(), 2s)) return 1;
    auto r = c.receive(3s);
    if (r.kind != ControlClient::Received::Kind::Message) return 2;
    auto* e = std::get_if<protocol::Error>(&*r.message);
    if (!e || e->reason.find("not allowed") == std::string::npos) return 3;
    return c.receive(3s).kind == ControlClient::Received::Kind::Eof ? 0 : 4;
  });
  EXPECT_EQ(waitChild(pid), 0);
  EXPECT_EQ(s.owner.helloCount(), 0);
}

TEST(ControlPeerCred, AConfiguredGroupMayConnectThroughA0660Socket) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to fork a child running as another uid";
  test::FakeControlServer s;
  ControlServerOptions o;
  o.allowed_gid = kNogroup;
  s.start(o);
  const auto& dir = s.dir;
  struct stat st{};
  ASSERT_EQ(::stat(dir.sock().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, kNogroup);
  ASSERT_EQ(::chmod(dir.dir.c_str(), 0711), 0);  // let the worker reach the socket
  pid_t pid = forkAsNobody([&] {
    ControlClient c;
    if (!c.connect(dir.sock(), 2s)) return 1;
    if (!c.hello(helloFor("nobody:1"), 2s)) return 2;
    if (!c.send(protocol::Reserve{1, 0})) return 3;
    return c.receive(3s).kind == ControlClient::Received::Kind::Message ? 0 : 4;
  });
  EXPECT_EQ(waitChild(pid), 0);
  EXPECT_EQ(s.owner.helloCount(), 1);
}

}  // namespace
}  // namespace hostq::control
