// The data plane between real processes: one server, several forked workers, real futex
// wake-ups across address spaces. Children report through exit codes (never gtest asserts).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstring>
#include <optional>
#include <vector>

#include "shm/server_segment.hpp"
#include "shm/worker_segment.hpp"
#include "support/shm_process.hpp"
#include "support/shm_raw_view.hpp"
#include "support/wait.hpp"

namespace hostq::shm {
namespace {

using namespace std::chrono_literals;
using test::forkChild;
using test::waitExit;

// --- Message shapes. Requests: slot, seq, checksum, then a seq-derived body of varying length
// (so records of every size cross the ring). Replies echo seq with a longer derived body.
std::uint32_t checksum(const std::byte* p, std::size_t n) {
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<std::uint8_t>(p[i])) * 16777619u;
  return h;
}
std::size_t fill(std::byte* out, std::uint32_t a, std::uint32_t seq, std::size_t bodyLen) {
  std::memcpy(out, &a, 4);
  std::memcpy(out + 4, &seq, 4);
  for (std::size_t i = 0; i < bodyLen; ++i) out[12 + i] = static_cast<std::byte>((seq * 7 + i) & 0xff);
  const std::uint32_t c = checksum(out + 12, bodyLen);
  std::memcpy(out + 8, &c, 4);
  return 12 + bodyLen;
}
// Returns seq, or UINT32_MAX if the record is malformed.
std::uint32_t check(const std::byte* p, std::size_t n, std::uint32_t& a) {
  if (n < 12) return UINT32_MAX;
  std::uint32_t seq = 0, c = 0;
  std::memcpy(&a, p, 4);
  std::memcpy(&seq, p + 4, 4);
  std::memcpy(&c, p + 8, 4);
  return checksum(p + 12, n - 12) == c ? seq : UINT32_MAX;
}
std::size_t requestBody(std::uint32_t seq) { return (seq * 37u) % (kRequestPayloadMax - 11); }
std::size_t replyBody(std::uint32_t seq) { return (seq * 101u) % (kReplyPayloadMax - 11); }

enum WorkerExit : int { kOk = 0, kAttachFailed = 10, kBadReply = 11, kPushFailed = 12, kTimedOut = 13, kClosed = 14 };

/// Keeps up to `window` requests outstanding, checks every reply's seq (in order) and checksum.
/// rounds == 0: run until the slot is closed (returns kOk then).
int runWorker(WorkerSegment& w, std::uint32_t slot, std::uint32_t rounds, std::uint32_t window,
              std::atomic<std::uint64_t>* progress = nullptr) {
  std::array<std::byte, kReplyPayloadMax> buf{};
  std::uint32_t sent = 0, received = 0;
  while (rounds == 0 || received < rounds) {
    while (sent - received < window && (rounds == 0 || sent < rounds)) {
      const std::size_t n = fill(buf.data(), slot, sent, requestBody(sent));
      const PushResult r = w.pushRequest(std::span(buf.data(), n));
      if (r != PushResult::Ok) return kPushFailed;
      ++sent;
    }
    std::size_t len = 0;
    const PopResult p = w.popReply(buf, len);
    if (p == PopResult::Ok) {
      std::uint32_t echoedSlot = 0;
      if (check(buf.data(), len, echoedSlot) != received || len != 12 + replyBody(received) ||
          echoedSlot != slot)
        return kBadReply;
      ++received;
      if (progress) progress->store(received, std::memory_order_relaxed);
      continue;
    }
    if (p != PopResult::Empty) return kBadReply;
    const WaitOutcome o = w.waitForReply(5s);
    if (o == WaitOutcome::Closed) return rounds == 0 ? kOk : kClosed;
    if (o == WaitOutcome::TimedOut) return kTimedOut;
  }
  return w.counters().wakeMisses == 0 ? kOk : kTimedOut;
}

/// Server side of the exchange: verifies per-slot order and checksums, echoes replies.
struct EchoServer {
  ServerSegment& seg;
  std::vector<std::uint32_t> expected;  // next request seq per slot
  std::vector<std::uint64_t> served;
  std::uint64_t corruptSlots = 0;
  std::uint64_t orderErrors = 0;
  std::array<std::byte, kReplyPayloadMax> in{}, out{};

  explicit EchoServer(ServerSegment& s) : seg(s), expected(s.capacity()), served(s.capacity()) {}

  void onReset(std::uint32_t slot) { expected[slot] = 0; }

  // One pass over all active slots; returns work done. Corrupt slots are released.
  std::size_t pass() {
    std::size_t work = 0;
    std::vector<std::uint32_t> toRelease;
    for (std::uint32_t s : seg.activeSlots()) {
      for (int batch = 0; batch < 16; ++batch) {
        std::size_t len = 0;
        const PopResult r = seg.popRequest(s, in, len);
        if (r == PopResult::Empty) break;
        if (r != PopResult::Ok) {
          toRelease.push_back(s);
          break;
        }
        std::uint32_t slotField = 0;
        const std::uint32_t seq = check(in.data(), len, slotField);
        if (seq != expected[s] || slotField != s || len != 12 + requestBody(seq)) {
          ++orderErrors;
          toRelease.push_back(s);
          break;
        }
        ++expected[s];
        ++served[s];
        ++work;
        const std::size_t n = fill(out.data(), s, seq, replyBody(seq));
        if (seg.pushReply(s, std::span(out.data(), n)) != PushResult::Ok) {
          ++orderErrors;  // workers keep fewer than kReplyRingCapacity outstanding
          toRelease.push_back(s);
          break;
        }
      }
    }
    for (std::uint32_t s : toRelease) {
      ++corruptSlots;
      seg.releaseSlot(s);
    }
    return work;
  }

  // Serves until `done()`; never sleeps longer than 20 ms so `done` is polled.
  // `done` is polled when idle and every 64 busy passes (it may cost syscalls).
  template <class Done>
  void serveUntil(Done done) {
    for (std::uint32_t busy = 0;;) {
      if (pass() != 0 && ++busy % 64 != 0) continue;
      if (done()) return;
      (void)seg.waitForWork(20ms);
    }
  }
};

/// Forks a worker that waits for a byte on a pipe (sent once its slot was reset for its pid),
/// then attaches and runs `body(WorkerSegment&)`.
struct ForkedWorker {
  pid_t pid = -1;
  int goFd = -1;
};

template <class Body>
ForkedWorker forkWorker(ServerSegment& seg, std::uint32_t slot, Body body) {
  int p[2];
  if (::pipe(p) != 0) return {};
  const int fd = seg.fd();
  const std::uint64_t gen = seg.generation();
  const pid_t pid = forkChild([&]() -> int {
    ::close(p[1]);
    char c;
    if (::read(p[0], &c, 1) != 1) return kAttachFailed;
    auto w = WorkerSegment::attach(fd, slot, gen);
    if (!w) return kAttachFailed;
    return body(w.value());
  });
  ::close(p[0]);
  return {pid, p[1]};
}
void go(ServerSegment& seg, EchoServer& srv, std::uint32_t slot, ForkedWorker& w) {
  seg.resetSlot(slot, w.pid);
  srv.onReset(slot);
  const char c = 'g';
  ASSERT_EQ(::write(w.goFd, &c, 1), 1);
  ::close(w.goFd);
}

bool exited(pid_t pid, int& status) {
  int st = 0;
  if (::waitpid(pid, &st, WNOHANG) != pid) return false;
  status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  return true;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr std::uint32_t kRoundsPerWorker = 40'000;
#else
constexpr std::uint32_t kRoundsPerWorker = 90'000;  // 6 x 90k x 2 = 1.08 M records
#endif

TEST(ShmFork, SixWorkersExchangeOverAMillionRecordsInOrder) {
  constexpr std::uint32_t kWorkers = 6;
  auto seg = ServerSegment::create(kWorkers);
  ASSERT_TRUE(seg);
  EchoServer srv(seg.value());
  std::vector<ForkedWorker> workers;
  for (std::uint32_t i = 0; i < kWorkers; ++i) {
    workers.push_back(forkWorker(seg.value(), i, [i](WorkerSegment& w) {
      return runWorker(w, i, kRoundsPerWorker, 1 + i % 8);  // windows 1..6
    }));
    go(seg.value(), srv, i, workers.back());
  }
  std::vector<int> status(kWorkers, -1);
  std::uint32_t done = 0;
  srv.serveUntil([&] {
    for (std::uint32_t i = 0; i < kWorkers; ++i)
      if (status[i] == -1 && exited(workers[i].pid, status[i])) {
        seg->releaseSlot(i);
        ++done;
      }
    return done == kWorkers;
  });
  for (std::uint32_t i = 0; i < kWorkers; ++i) {
    EXPECT_EQ(status[i], kOk) << "worker " << i;
    EXPECT_EQ(srv.served[i], kRoundsPerWorker) << "worker " << i;
  }
  EXPECT_EQ(srv.orderErrors, 0u);
  EXPECT_EQ(srv.corruptSlots, 0u);
  EXPECT_EQ(seg->counters().wakeMisses, 0u);
  const auto& c = seg->counters();
  RecordProperty("server_spin_ok", std::to_string(c.spinSuccesses));
  RecordProperty("server_futex_waits", std::to_string(c.futexWaits));
  RecordProperty("server_futex_wakes", std::to_string(c.futexWakes));
}

TEST(ShmFork, KilledWorkerSlotIsReclaimedWhileOthersKeepGoing) {
  constexpr std::uint32_t kWorkers = 3;
  auto seg = ServerSegment::create(kWorkers);
  ASSERT_TRUE(seg);
  EchoServer srv(seg.value());
  std::vector<ForkedWorker> workers;
  for (std::uint32_t i = 0; i < kWorkers; ++i) {
    workers.push_back(forkWorker(seg.value(), i, [i](WorkerSegment& w) { return runWorker(w, i, 0, 4); }));
    go(seg.value(), srv, i, workers.back());
  }
  // Let everyone get going, then kill worker 1 in the middle of its traffic.
  srv.serveUntil([&] { return srv.served[0] > 2000 && srv.served[1] > 2000 && srv.served[2] > 2000; });
  ASSERT_EQ(::kill(workers[1].pid, SIGKILL), 0);
  srv.serveUntil([&] {
    int st;
    return exited(workers[1].pid, st);
  });
  seg->releaseSlot(1);  // what the server does when the control plane reports the death

  const std::uint64_t before0 = srv.served[0], before2 = srv.served[2];
  ForkedWorker fresh = forkWorker(seg.value(), 1, [](WorkerSegment& w) { return runWorker(w, 1, 5000, 8); });
  go(seg.value(), srv, 1, fresh);
  int freshStatus = -1;
  srv.serveUntil([&] { return exited(fresh.pid, freshStatus); });
  EXPECT_EQ(freshStatus, kOk);
  EXPECT_EQ(srv.served[1] >= 5000, true);
  EXPECT_GT(srv.served[0], before0) << "the others were served meanwhile";
  EXPECT_GT(srv.served[2], before2);

  seg->releaseSlot(0);
  seg->releaseSlot(2);
  for (std::uint32_t i : {0u, 2u}) {
    int st = -1;
    srv.serveUntil([&] { return exited(workers[i].pid, st); });
    EXPECT_EQ(st, kOk) << "a released worker returns Closed and exits cleanly";
  }
  EXPECT_EQ(srv.orderErrors, 0u);
  EXPECT_EQ(srv.corruptSlots, 0u);
}

TEST(ShmFork, GarbageFromOneWorkerIsCorruptAndTheRestAreServed) {
  constexpr std::uint32_t kWorkers = 3;
  auto seg = ServerSegment::create(kWorkers);
  ASSERT_TRUE(seg);
  EchoServer srv(seg.value());
  std::vector<ForkedWorker> workers;
  for (std::uint32_t i = 0; i < kWorkers; ++i) {
    if (i == 1) {
      const int fd = seg->fd();
      workers.push_back(forkWorker(seg.value(), i, [fd](WorkerSegment& w) {
        // Behave for a while, then scribble over the slot through a raw mapping and keep
        // waiting as if nothing happened.
        if (runWorker(w, 1, 1000, 4) != kOk) return kBadReply;
        test::ShmRawView raw(fd);
        auto* p = reinterpret_cast<unsigned char*>(&raw.slot(1).requests);
        std::memset(p, 0xA5, sizeof(RequestRing));
        (void)w.pushRequest({});  // rings the doorbell if the server sleeps
        return w.waitForReply(5s) == WaitOutcome::Closed ? kOk : kTimedOut;
      }));
    } else {
      workers.push_back(forkWorker(seg.value(), i, [i](WorkerSegment& w) { return runWorker(w, i, 20'000, 4); }));
    }
    go(seg.value(), srv, i, workers.back());
  }
  std::vector<int> status(kWorkers, -1);
  srv.serveUntil([&] {
    std::uint32_t n = 0;
    for (std::uint32_t i = 0; i < kWorkers; ++i) n += status[i] != -1 || exited(workers[i].pid, status[i]);
    return n == kWorkers;
  });
  EXPECT_EQ(status[1], kOk) << "the scribbler saw its slot closed";
  EXPECT_EQ(srv.corruptSlots, 1u);
  EXPECT_FALSE(seg->isActive(1));
  for (std::uint32_t i : {0u, 2u}) {
    EXPECT_EQ(status[i], kOk);
    EXPECT_EQ(srv.served[i], 20'000u);
  }
}

// Server restarts: the test process plays the supervisor; servers are children that hand the
// segment to the workers over socketpairs with SCM_RIGHTS, as the control plane does.
struct SharedProgress {
  std::atomic<std::uint64_t> rounds[4];       // replies received in the current generation
  std::atomic<std::uint64_t> generations[4];  // distinct generations attached
  std::atomic<std::uint32_t> stop;
};

TEST(ShmFork, WorkersFollowTheServerIntoANewGeneration) {
  constexpr std::uint32_t kWorkers = 3;
  void* mem = ::mmap(nullptr, sizeof(SharedProgress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* prog = new (mem) SharedProgress{};

  std::array<std::array<int, 2>, kWorkers> socks{};
  std::vector<pid_t> workerPids;
  for (std::uint32_t i = 0; i < kWorkers; ++i) {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, socks[i].data()), 0);
    workerPids.push_back(forkChild([&, i]() -> int {
      const int sock = socks[i][1];
      std::uint64_t lastGen = 0;
      while (prog->stop.load() == 0) {
        test::FdMessage msg;
        const int fd = test::recvFd(sock, msg);
        if (fd < 0) return prog->stop.load() ? kOk : kAttachFailed;
        auto w = WorkerSegment::attach(fd, msg.slot, msg.generation);
        ::close(fd);
        if (!w || msg.generation == lastGen) return kAttachFailed;
        lastGen = msg.generation;
        prog->generations[i].fetch_add(1);
        prog->rounds[i].store(0);
        // Serve until the segment dies under us; a request in flight at that moment is lost
        // with the old server, which is the caller's business (re-send via the new one).
        std::array<std::byte, kReplyPayloadMax> buf{};
        std::uint64_t n = 0;
        while (!w->generationChanged() && prog->stop.load() == 0) {
          if (w->pushRequest(std::span(buf.data(), 16)) != PushResult::Ok) return kPushFailed;
          std::size_t len = 0;
          PopResult p;
          while ((p = w->popReply(buf, len)) == PopResult::Empty) {
            const WaitOutcome o = w->waitForReply(50ms);
            if (o == WaitOutcome::Closed || w->generationChanged() || prog->stop.load()) break;
          }
          if (p == PopResult::Ok) prog->rounds[i].store(++n);
          else if (p != PopResult::Empty) return kBadReply;
          else break;
        }
      }
      return kOk;
    }));
  }

  auto startServer = [&]() {
    return forkChild([&]() -> int {
      auto seg = ServerSegment::create(kWorkers);
      if (!seg) return 1;
      for (std::uint32_t i = 0; i < kWorkers; ++i) {
        seg->resetSlot(i, workerPids[i]);
        if (!test::sendFd(socks[i][0], seg->fd(), {seg->generation(), i})) return 2;
      }
      EchoServer srv(seg.value());
      std::array<std::byte, kReplyPayloadMax> in{};
      for (;;) {  // plain echo: this server dies by signal
        bool any = false;
        for (std::uint32_t s : seg->activeSlots()) {
          std::size_t len = 0;
          while (seg->popRequest(s, in, len) == PopResult::Ok) {
            any = true;
            (void)seg->pushReply(s, std::span(in.data(), len));
          }
        }
        if (!any) (void)seg->waitForWork(100ms);
      }
    });
  };
  auto allProgressed = [&](std::uint64_t gens) {
    for (std::uint32_t i = 0; i < kWorkers; ++i)
      if (prog->generations[i].load() != gens || prog->rounds[i].load() < 2000) return false;
    return true;
  };

  pid_t server = startServer();
  ASSERT_TRUE(test::waitUntil([&] { return allProgressed(1); }));
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  EXPECT_EQ(waitExit(server), -SIGKILL);

  server = startServer();
  EXPECT_TRUE(test::waitUntil([&] { return allProgressed(2); })) << "workers re-attached to the new generation";
  prog->stop.store(1);
  ::kill(server, SIGKILL);
  waitExit(server);
  for (std::uint32_t i = 0; i < kWorkers; ++i) ::close(socks[i][0]);  // unblocks recvFd
  for (std::uint32_t i = 0; i < kWorkers; ++i) EXPECT_EQ(waitExit(workerPids[i]), kOk) << "worker " << i;
  ::munmap(mem, sizeof(SharedProgress));
}

}  // namespace
}  // namespace hostq::shm
