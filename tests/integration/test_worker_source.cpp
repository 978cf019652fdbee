// The worker's view of the server over the socket, against a scripted server that writes bytes
// exactly as a test wants them: several frames in one write must all be seen, even when the
// kernel has nothing more to say.
#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <thread>

#include "control/control_client.hpp"
#include "protocol/codec.hpp"
#include "support/control_harness.hpp"
#include "worker/server_source.hpp"

namespace hostq {
namespace {

using namespace std::chrono_literals;

/// One accepted connection of a listening Unix socket, driven by the test thread.
class ScriptedServer {
 public:
  explicit ScriptedServer(const std::string& path) {
    m_listen = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::bind(m_listen, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(m_listen, 4) != 0)
      throw std::runtime_error("bind/listen " + path);
  }
  ~ScriptedServer() {
    if (m_conn >= 0) ::close(m_conn);
    ::close(m_listen);
  }
  bool accept() {
    drop();
    m_conn = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
    return m_conn >= 0;
  }
  /// Closes the accepted connection: the client sees EOF.
  void drop() {
    if (m_conn >= 0) ::close(m_conn);
    m_conn = -1;
  }
  /// Reads one whole frame (blocking).
  std::optional<protocol::Message> read() {
    std::vector<std::byte> buf(protocol::kHeaderSize);
    if (!readExactly(buf.data(), buf.size())) return std::nullopt;
    auto h = protocol::decodeHeader(buf);
    if (!h) return std::nullopt;
    buf.resize(h->frameSize());
    if (!readExactly(buf.data() + protocol::kHeaderSize, h->body_length)) return std::nullopt;
    auto m = protocol::decode(buf);
    if (!m.ok()) return std::nullopt;
    return std::move(m).value();
  }
  /// All of `msgs` in one write, so that the client's single read gets them together.
  bool writeTogether(const std::vector<protocol::Message>& msgs) {
    std::vector<std::byte> out;
    for (const auto& m : msgs) {
      auto e = protocol::encode(m);
      if (!e.ok()) return false;
      out.insert(out.end(), e.value().begin(), e.value().end());
    }
    return ::send(m_conn, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
  }

 private:
  bool readExactly(std::byte* p, std::size_t n) {
    while (n) {
      ssize_t r = ::recv(m_conn, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<std::size_t>(r);
    }
    return true;
  }
  int m_listen = -1;
  int m_conn = -1;
};

protocol::JobAssigned jobFor(const std::string& worker, std::uint64_t seq, JobId id) {
  protocol::JobAssigned j;
  j.id = id;
  j.tag = "Test#run";
  j.queue = "queue";
  j.locked_by = worker;
  j.request_seq = seq;
  return j;
}

TEST(ControlClient, SeveralFramesInOneReadAreAllBufferedAndReported) {
  test::TempSocketDir dir;
  ScriptedServer srv(dir.sock());
  control::ControlClient c;
  std::thread t([&] {
    ASSERT_TRUE(srv.accept());
    ASSERT_TRUE(srv.read());  // Hello
    ASSERT_TRUE(srv.writeTogether({protocol::HelloOk{std::nullopt, 1, 1}}));
    ASSERT_TRUE(srv.read());  // Reserve
    ASSERT_TRUE(srv.writeTogether({protocol::ResultAck{{7}}, jobFor("w:1", 1, 42)}));
  });
  ASSERT_TRUE(c.connect(dir.sock(), 2s));
  ASSERT_TRUE(c.hello(test::helloFor("w:1"), 2s));
  ASSERT_TRUE(c.send(protocol::Reserve{1, 0}));
  t.join();
  auto first = c.receive(2s);
  ASSERT_EQ(first.kind, control::ControlClient::Received::Kind::Message);
  EXPECT_TRUE(std::holds_alternative<protocol::ResultAck>(*first.message));
  // Both frames came in one read: the kernel has nothing left, the client holds the job.
  EXPECT_TRUE(c.hasBuffered());
  auto second = c.receive(0ms);
  ASSERT_EQ(second.kind, control::ControlClient::Received::Kind::Message);
  EXPECT_EQ(std::get<protocol::JobAssigned>(*second.message).id, 42);
  EXPECT_FALSE(c.hasBuffered());
}

// The stall the bench found: a socket worker read an acknowledgement and its next job in one
// read, handled the acknowledgement, then slept in poll(2) on a socket with nothing more to come.
TEST(ServerSource, AJobThatArrivesInTheSameReadAsAnAckIsTakenAtOnce) {
  test::TempSocketDir dir;
  ScriptedServer srv(dir.sock());
  const int interrupt = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(interrupt, 0);
  worker::ServerSource source(dir.sock(), "w:1", WorkerConfig{}, Transport::Socket, interrupt);
  auto got = std::async(std::launch::async, [&] {
    Job job;
    auto st = source.next(job);
    return std::make_pair(st, job.id);
  });
  ASSERT_TRUE(srv.accept());
  ASSERT_TRUE(srv.read());  // Hello
  ASSERT_TRUE(srv.writeTogether({protocol::HelloOk{std::nullopt, 1, 1}}));
  auto reserve = srv.read();
  ASSERT_TRUE(reserve && std::holds_alternative<protocol::Reserve>(*reserve));
  const auto seq = std::get<protocol::Reserve>(*reserve).request_seq;
  ASSERT_TRUE(srv.writeTogether({protocol::ResultAck{{7}}, jobFor("w:1", seq, 42)}));
  // The worker polls the socket once a second: 5 s is several of its waits, not a race.
  const bool in_time = got.wait_for(5s) == std::future_status::ready;
  if (!in_time) {
    std::uint64_t one = 1;
    (void)::write(interrupt, &one, sizeof one);
  }
  auto [status, id] = got.get();
  ::close(interrupt);
  ASSERT_TRUE(in_time) << "the job sat in the client's buffer";
  EXPECT_EQ(status, worker::NextStatus::Job);
  EXPECT_EQ(id, 42);
}


/// A registered socket source that has taken job 42 from the scripted server.
class SourceWithAJob : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(interrupt, 0);
    auto got = nextInTheBackground();
    ASSERT_TRUE(srv.accept());
    ASSERT_TRUE(srv.read());  // Hello
    ASSERT_TRUE(srv.writeTogether({protocol::HelloOk{std::nullopt, 1, 1}}));
    auto reserve = srv.read();
    ASSERT_TRUE(reserve && std::holds_alternative<protocol::Reserve>(*reserve));
    ASSERT_TRUE(srv.writeTogether({jobFor("w:1", std::get<protocol::Reserve>(*reserve).request_seq, 42)}));
    auto [status, id] = got.get();
    ASSERT_EQ(status, worker::NextStatus::Job);
    ASSERT_EQ(id, 42);
  }
  void TearDown() override { ::close(interrupt); }

  /// The main thread's call, run by another so that the test can play the server meanwhile.
  std::future<std::pair<worker::NextStatus, JobId>> nextInTheBackground() {
    return std::async(std::launch::async, [&] {
      Job job;
      return std::make_pair(source.next(job), job.id);
    });
  }

  void reportJob42() {
    source.report(JobResult::completed(42));
    auto complete = srv.read();
    ASSERT_TRUE(complete && std::holds_alternative<protocol::Complete>(*complete));
  }

  /// As the worker's signal watcher does it: from another thread.
  void abortFromAnotherThread() {
    std::thread([&] { source.abortRunning(42, "worker received Terminated"); }).join();
  }

  test::TempSocketDir dir;
  ScriptedServer srv{dir.sock()};
  int interrupt = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  worker::ServerSource source{dir.sock(), "w:1", WorkerConfig{}, Transport::Socket, interrupt};
};

// TERM while the job runs: the abort reaches the server on the main thread's connection.
TEST_F(SourceWithAJob, AnAbortOfTheJobInHandReachesTheServerAsAFailure) {
  abortFromAnotherThread();
  auto m = srv.read();
  ASSERT_TRUE(m && std::holds_alternative<protocol::Fail>(*m));
  EXPECT_EQ(std::get<protocol::Fail>(*m).job_id, 42);
  EXPECT_EQ(std::get<protocol::Fail>(*m).error, "worker received Terminated");
}

// The worker does not judge a failure: the database's decision comes back with the ack, and the
// source hands it to the worker (whose retry / permanent-failure hooks follow it).
TEST_F(SourceWithAJob, TheDecisionOnAFailureComesBackWithItsAck) {
  std::vector<FailResult> decisions;
  source.onDecision([&](const FailResult& d) { decisions.push_back(d); });
  source.report(JobResult::failed(42, "bad input"));
  auto fail = srv.read();
  ASSERT_TRUE(fail && std::holds_alternative<protocol::Fail>(*fail));
  EXPECT_EQ(std::get<protocol::Fail>(*fail).error, "bad input");
  EXPECT_FALSE(std::get<protocol::Fail>(*fail).permanent);
  EXPECT_TRUE(decisions.empty());
  const FailResult moved{42, FailOutcome::MovedToFailedJobs, 1, std::nullopt};
  ASSERT_TRUE(srv.writeTogether({protocol::ResultAck{{42}, {moved}}}));
  source.close();  // waits for the ack
  EXPECT_EQ(decisions, std::vector<FailResult>{moved});
}

// The watcher read "job 42 is running", then the main thread reported it: the abort must not
// contradict the report (the job completed; a Fail would run it again).
TEST_F(SourceWithAJob, AnAbortOfAJobAlreadyReportedSendsNothing) {
  reportJob42();
  if (HasFatalFailure()) return;
  abortFromAnotherThread();
  ASSERT_TRUE(srv.writeTogether({protocol::ResultAck{{42}}}));
  source.close();
  // Whatever the source sent after the Complete comes before its Goodbye.
  auto next = srv.read();
  ASSERT_TRUE(next);
  EXPECT_TRUE(std::holds_alternative<protocol::Goodbye>(*next))
      << "sent " << protocol::typeName(protocol::typeOf(*next)) << " after the job was reported";
}

// The watcher's window in full: it read "job 42 is running", the main thread reported 42 and is
// back in next(), re-registering after the server dropped it. The abort waits for the main
// thread to be done with the client (under TSan, the old code's unlocked reconnect raced the
// abort's use of the same client) and then sends nothing for a job that is no longer in hand.
TEST_F(SourceWithAJob, AnAbortWhileTheMainThreadReconnectsWaitsAndSendsNothing) {
  reportJob42();
  if (HasFatalFailure()) return;
  srv.drop();
  auto got = nextInTheBackground();
  ASSERT_TRUE(srv.accept());
  auto hello = srv.read();
  ASSERT_TRUE(hello && std::holds_alternative<protocol::Hello>(*hello));
  auto abort = std::async(std::launch::async, [&] { source.abortRunning(42, "worker received Terminated"); });
  ASSERT_TRUE(srv.writeTogether({protocol::HelloOk{std::nullopt, 1, 2}}));
  std::vector<protocol::Message> seen;
  auto readUntil = [&](auto is_last) {
    while (auto m = srv.read()) {
      seen.push_back(*m);
      if (is_last(*m)) return true;
    }
    return false;
  };
  // The Complete, resent on the new connection since it was never acknowledged, then a Reserve.
  ASSERT_TRUE(readUntil([](const protocol::Message& m) { return std::holds_alternative<protocol::Reserve>(m); }));
  const auto seq = std::get<protocol::Reserve>(seen.back()).request_seq;
  ASSERT_TRUE(srv.writeTogether({protocol::ResultAck{{42}}, jobFor("w:1", seq, 43)}));
  auto [status, id] = got.get();
  EXPECT_EQ(status, worker::NextStatus::Job);
  EXPECT_EQ(id, 43);
  abort.get();
  source.close();
  ASSERT_TRUE(readUntil([](const protocol::Message& m) { return std::holds_alternative<protocol::Goodbye>(m); }));
  for (const auto& m : seen)
    EXPECT_FALSE(std::holds_alternative<protocol::Fail>(m)) << "a Fail for job " << std::get<protocol::Fail>(m).job_id;
}

}  // namespace
}  // namespace hostq
