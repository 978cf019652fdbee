#include "shm/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace hostq::shm {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

WaitResult futexWait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                     std::chrono::nanoseconds timeout) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout.count() >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    tsp = &ts;
  }
  // FUTEX_WAIT (not FUTEX_WAIT_PRIVATE): the waker may be another process.
  long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, tsp,
                    nullptr, 0);
  if (rc == 0) return WaitResult::Woken;
  switch (errno) {
    case EAGAIN: return WaitResult::ValueChanged;
    case ETIMEDOUT: return WaitResult::TimedOut;
    default: return WaitResult::Interrupted;
  }
}

int futexWake(std::atomic<std::uint32_t>* word, int count) noexcept {
  long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr,
                    nullptr, 0);
  return rc < 0 ? 0 : static_cast<int>(rc);
}

}  // namespace hostq::shm
