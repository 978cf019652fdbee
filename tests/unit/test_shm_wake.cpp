// The wake protocol between a server loop and a worker, as threads of one process (so TSan can
// watch it). A lost wake-up would show as a FUTEX_WAIT that only the 1 s safety net ends:
// every test here asserts wakeMisses == 0 (an expiry that found work waiting).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "shm/adaptive_spin.hpp"
#include "shm/server_segment.hpp"
#include "shm/spinner_token.hpp"
#include "shm/worker_segment.hpp"
#include "support/shm_raw_view.hpp"
#include "support/wait.hpp"

namespace hostq::shm {
namespace {

using namespace std::chrono_literals;

// Random pauses between protocol steps, from a seed: yields, short spins or nothing, so the
// two sides cross each other's publish/announce/re-check windows in many different orders.
class Jitter {
 public:
  explicit Jitter(std::uint64_t seed) : m_rng(seed) {}
  void operator()() {
    switch (m_rng() % 8) {
      case 0: std::this_thread::yield(); break;
      case 1:
        for (unsigned i = m_rng() % 64; i > 0; --i) cpuRelax();
        break;
      case 2:
        for (unsigned i = m_rng() % 2000; i > 0; --i) cpuRelax();
        break;
      default: break;
    }
  }

 private:
  std::mt19937_64 m_rng;
};

class ShmWake : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = ServerSegment::create(2);
    ASSERT_TRUE(created);
    server.emplace(std::move(created).value());
    server->resetSlot(0, ::getpid());
    auto w = WorkerSegment::attach(server->fd(), 0, server->generation());
    ASSERT_TRUE(w);
    worker.emplace(std::move(w).value());
  }
  std::optional<ServerSegment> server;
  std::optional<WorkerSegment> worker;
};

// Echo server loop until `stop`; adds 1 to the u64 in each request.
void serve(ServerSegment& server, const std::atomic<bool>& stop, Jitter jitter) {
  std::array<std::byte, kRequestPayloadMax> in{};
  std::size_t len = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    bool any = false;
    for (std::uint32_t s : server.activeSlots()) {
      while (server.popRequest(s, in, len) == PopResult::Ok) {
        any = true;
        std::uint64_t v = 0;
        std::memcpy(&v, in.data(), sizeof v);
        ++v;
        jitter();
        while (server.pushReply(s, std::as_bytes(std::span(&v, 1))) == PushResult::Full) std::this_thread::yield();
      }
    }
    if (!any) {
      jitter();
      (void)server.waitForWork(100ms);
    }
  }
}

class ShmWakeSeeded : public ShmWake, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(ShmWakeSeeded, PingPongUnderRandomInterleavingLosesNoWakeUp) {
  const std::uint64_t seed = GetParam();
  std::atomic<bool> stop{false};
  std::thread srv([&] { serve(*server, stop, Jitter(seed * 2 + 1)); });
  Jitter jitter(seed * 2);
  std::array<std::byte, kReplyPayloadMax> out{};
  std::size_t len = 0;
  constexpr int kRounds = 3000;
  for (std::uint64_t i = 0; i < kRounds; ++i) {
    jitter();
    ASSERT_EQ(worker->pushRequest(std::as_bytes(std::span(&i, 1))), PushResult::Ok);
    PopResult r;
    while ((r = worker->popReply(out, len)) == PopResult::Empty) {
      jitter();
      ASSERT_EQ(worker->waitForReply(5s), WaitOutcome::Ready) << "round " << i;
    }
    ASSERT_EQ(r, PopResult::Ok);
    std::uint64_t v = 0;
    std::memcpy(&v, out.data(), sizeof v);
    ASSERT_EQ(v, i + 1);
  }
  stop = true;
  server->ringServerDoorbell();
  srv.join();
  EXPECT_EQ(worker->counters().wakeMisses, 0u);
  EXPECT_EQ(server->counters().wakeMisses, 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ShmWakeSeeded, ::testing::Values(1, 2, 3, 42, 1234));

TEST_F(ShmWake, DoorbellFromAnotherThreadWakesSleepingServer) {
  server->releaseSlot(0);  // no workers: the server sleeps without spinning
  test::ShmRawView raw(server->fd());
  std::thread ringer([&] {
    ASSERT_TRUE(test::waitUntil([&] { return raw.header().serverSleeping.load() != 0; }));
    server->doorbell().ring();
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(server->waitForWork(5s), WaitOutcome::Ready);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  ringer.join();
  EXPECT_EQ(server->counters().wakeMisses, 0u);
  EXPECT_GE(server->counters().spinSkipped, 1u);
}

TEST_F(ShmWake, DoorbellRungBeforeWaitIsNotLost) {
  EXPECT_EQ(server->waitForWork(0ns), WaitOutcome::TimedOut);
  server->ringServerDoorbell();
  EXPECT_EQ(server->waitForWork(5s), WaitOutcome::Ready);
  EXPECT_EQ(server->waitForWork(1ms), WaitOutcome::TimedOut) << "one ring, one Ready";
}

TEST_F(ShmWake, WaitForWorkTimesOut) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(server->waitForWork(20ms), WaitOutcome::TimedOut);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
}

TEST_F(ShmWake, RequestWakesSleepingServer) {
  test::ShmRawView raw(server->fd());
  std::thread client([&] {
    ASSERT_TRUE(test::waitUntil([&] { return raw.header().serverSleeping.load() != 0; }));
    std::uint64_t v = 7;
    ASSERT_EQ(worker->pushRequest(std::as_bytes(std::span(&v, 1))), PushResult::Ok);
  });
  // Mark the worker asleep so the server skips spinning and goes straight to FUTEX_WAIT.
  raw.slot(0).workerSleeping.store(1);
  EXPECT_EQ(server->waitForWork(5s), WaitOutcome::Ready);
  client.join();
  EXPECT_TRUE(server->anyRequestPending());
  EXPECT_EQ(server->counters().wakeMisses, 0u);
  EXPECT_EQ(worker->counters().futexWakes, 1u);
}

// A server asleep that has not run since a worker rang is not rung again: the doorbell already
// moved past the value its FUTEX_WAIT compares against (sleepDoorbell). Once it sleeps on the new
// value, the next push rings again. The server here is a raw header, so it never wakes between.
TEST_F(ShmWake, ASleepingServerIsRungOncePerSleepNotOncePerPush) {
  test::ShmRawView raw(server->fd());
  SegmentHeader& h = raw.header();
  auto sleepOnCurrentDoorbell = [&] {
    h.sleepDoorbell.store(h.doorbell.load());
    h.serverSleeping.store(1);
  };
  sleepOnCurrentDoorbell();
  const std::uint32_t before = h.doorbell.load();
  std::uint64_t v = 7;
  for (int i = 0; i < 5; ++i) ASSERT_EQ(worker->pushRequest(std::as_bytes(std::span(&v, 1))), PushResult::Ok);
  EXPECT_EQ(worker->counters().futexWakes, 1u);
  EXPECT_EQ(h.doorbell.load(), before + 1);
  worker->nudgeServer();
  EXPECT_EQ(worker->counters().futexWakes, 1u) << "a nudge rang a server already rung";

  sleepOnCurrentDoorbell();
  ASSERT_EQ(worker->pushRequest(std::as_bytes(std::span(&v, 1))), PushResult::Ok);
  EXPECT_EQ(worker->counters().futexWakes, 2u);
  // And the server that wakes finds it all: one Ready, the requests pending.
  h.serverSleeping.store(0);
  EXPECT_EQ(server->waitForWork(5s), WaitOutcome::Ready);
  EXPECT_TRUE(server->anyRequestPending());
}

TEST_F(ShmWake, WaitForReplyTimesOut) {
  EXPECT_EQ(worker->waitForReply(20ms), WaitOutcome::TimedOut);
}

TEST_F(ShmWake, ReleaseWakesSleepingWorkerWithClosed) {
  test::ShmRawView raw(server->fd());
  std::thread releaser([&] {
    ASSERT_TRUE(test::waitUntil([&] { return raw.slot(0).workerSleeping.load() != 0; }));
    server->releaseSlot(0);
  });
  EXPECT_EQ(worker->waitForReply(5s), WaitOutcome::Closed);
  releaser.join();
  EXPECT_EQ(worker->counters().wakeMisses, 0u);
}

TEST_F(ShmWake, WorkerDoesNotSpinWhileServerSleeps) {
  test::ShmRawView raw(server->fd());
  raw.header().serverSleeping.store(1);
  EXPECT_EQ(worker->waitForReply(1ms), WaitOutcome::TimedOut);
  EXPECT_EQ(worker->counters().spinSkipped, 1u);
  EXPECT_EQ(worker->counters().spinPauses, 0u);
}

TEST_F(ShmWake, SpinnerCapIsRespectedAndDeadSpinnersAreReclaimed) {
  test::ShmRawView raw(server->fd());
  SegmentHeader& h = raw.header();
  h.spinners.store(h.maxSpinners);  // everyone else is spinning
  EXPECT_EQ(worker->waitForReply(1ms), WaitOutcome::TimedOut);
  EXPECT_EQ(worker->counters().spinPauses, 0u);

  // A worker died holding a token: resetSlot gives it back.
  h.spinners.store(1);
  raw.slot(1).workerSpinning.store(1);
  server->resetSlot(1, ::getpid());
  EXPECT_EQ(h.spinners.load(), 0u);
  EXPECT_EQ(raw.slot(1).workerSpinning.load(), 0u);
  // Reclaiming a token that was never taken saturates at zero.
  raw.slot(1).workerSpinning.store(1);
  server->releaseSlot(1);
  EXPECT_EQ(h.spinners.load(), 0u);
}

TEST(ShmAdaptiveSpin, BudgetStaysWithinBoundsAndAdapts) {
  AdaptiveSpin spin;
  const double p = pauseNanos();
  const auto lo = static_cast<std::uint32_t>(AdaptiveSpin::kMinSpinNs / p);
  const auto hi = static_cast<std::uint32_t>(AdaptiveSpin::kMaxSpinNs / p) + 1;
  for (int i = 0; i < 64; ++i) spin.onSpinFailure();
  EXPECT_GE(spin.budget(), std::max(1u, lo));
  EXPECT_LE(spin.budget(), std::max(1u, lo) + 1);
  const auto before = spin.budget();
  spin.onSpinSuccess(before * 3);
  EXPECT_GT(spin.budget(), before);
  for (int i = 0; i < 64; ++i) spin.onSpinSuccess(hi * 4);
  EXPECT_LE(spin.budget(), hi);
  // An expensive wake-up for an event that came within the cap grows the budget...
  for (int i = 0; i < 64; ++i) spin.onSpinFailure();
  const auto small = spin.budget();
  spin.afterSleep(1'000'000, 1'000'000 + 5'000, 1'000'000 + 5'000 + 40'000);
  EXPECT_GT(spin.budget(), small);
  // ...a cheap one, a stamp outside the wait, or an event past the cap does not.
  const auto b = spin.budget();
  spin.afterSleep(1'000'000, 1'000'000 + 5'000, 1'000'000 + 6'000);
  spin.afterSleep(1'000'000, 999'000, 1'100'000);
  spin.afterSleep(1'000'000, 1'000'000 + 500'000, 1'000'000 + 600'000);
  EXPECT_EQ(spin.budget(), b);
}

TEST(ShmAdaptiveSpin, PauseCalibrationIsPlausible) {
  EXPECT_GE(pauseNanos(), 1.0);
  EXPECT_LE(pauseNanos(), 200.0);
}

}  // namespace
}  // namespace hostq::shm
