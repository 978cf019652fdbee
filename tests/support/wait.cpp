#include "support/wait.hpp"

#include <sys/syscall.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

namespace hostq::test {

namespace {

bool poll(const std::function<bool()>& cond, std::chrono::milliseconds timeout, std::chrono::microseconds pause,
          std::chrono::microseconds max_pause) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::yield();
    // A poll interval, not a wait for the condition.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, max_pause);
  }
  return true;
}

}  // namespace

bool waitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  // Back-off keeps the poll cheap on a 2-core machine.
  return poll(cond, timeout, std::chrono::microseconds(50), std::chrono::microseconds(5000));
}

bool waitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  return poll(cond, timeout, interval, interval);
}

bool sleepingInHandler(pid_t pid) {
  // The syscall the thread is blocked in: its number first (or "running").
  std::ifstream f("/proc/" + std::to_string(pid) + "/syscall");
  long nr = -1;
  if (!(f >> nr)) return false;
#ifdef SYS_nanosleep
  if (nr == SYS_nanosleep) return true;
#endif
  return nr == SYS_clock_nanosleep;
}

}  // namespace hostq::test
