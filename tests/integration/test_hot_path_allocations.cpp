// The worker's hand-off path allocates nothing once warm: a counting operator new, switched on
// for the worker thread only, between the before_perform hook of one job and that of a job
// thousands later. In between lie the whole loop: the handler, the result, the record that
// carries it and the next Reserve, the wait, the JobAssigned decoded into the reused Job, and the
// ResultAcks that arrive meanwhile.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>

#include "hostq/worker.hpp"
#include "support/server_harness.hpp"

namespace {

thread_local bool t_counting = false;
std::atomic<std::uint64_t> g_allocations{0};

void* countedAlloc(std::size_t n) {
  if (t_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) { return countedAlloc(n); }
void* operator new[](std::size_t n) { return countedAlloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace hostq::test {
namespace {

class HotPathAllocations : public ServerTest {};

TEST_F(HotPathAllocations, WorkerLoopAllocatesNothingPerJobOnceWarm) {
  // Warm-up fills the reused buffers to their working size (the unacked results, the decoded
  // job's strings); the window is the steady state after it.
  constexpr int kWarmUp = 3000;
  constexpr int kWindow = 5000;
  constexpr int kJobs = kWarmUp + kWindow + 200;
  {
    auto store = connectStore();
    std::vector<NewJob> jobs(kJobs, job("alloc.noop"));
    for (auto& j : jobs) j.payload = "a payload of some forty bytes, as jobs have";
    ASSERT_EQ(store->enqueueBulk(jobs), static_cast<std::size_t>(kJobs));
  }
  auto server = startServer();

  WorkerOptions o;
  o.socket_path = socketPath();
  o.hostname = host();
  o.settings.transport = Transport::Shm;
  o.settings.config.queue = "queue";
  o.settings.max_job_count = kWarmUp + kWindow + 1;
  int seen = 0;
  std::uint64_t inWindow = 0;
  o.handlers.add("alloc.noop", [](const Job&) {});
  o.hooks.before_perform.push_back([&](const Job&) {
    ++seen;
    if (seen == kWarmUp) {
      t_counting = true;
    } else if (seen == kWarmUp + kWindow) {
      t_counting = false;
      inWindow = g_allocations.load();
    }
  });
  Worker worker(std::move(o));
  std::thread runner([&] { worker.run(); });
  runner.join();

  ASSERT_EQ(seen, kWarmUp + kWindow + 1) << "the worker stopped early";
  std::printf("%llu allocations on the worker's thread in %d jobs\n",
              static_cast<unsigned long long>(inWindow), kWindow);
  // A vector that outgrows its capacity still reallocates: doubling, so a few dozen times in a
  // run at most (more when the host is slow and more results wait for their ack, as under
  // TSan: 32), never per job. One per 50 jobs is still 50 times below one per job.
  EXPECT_LE(inWindow, static_cast<std::uint64_t>(kWindow / 50))
      << inWindow << " allocations in " << kWindow << " jobs on the worker's thread";
}

}  // namespace
}  // namespace hostq::test
