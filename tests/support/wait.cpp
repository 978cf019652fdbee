#include "support/wait.hpp"

#include <thread>

namespace hostq::test {

bool waitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(50);
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::yield();
    // Back-off keeps the poll cheap on a 2-core machine; it is a poll interval, not a wait for
    // the condition.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(5000));
  }
  return true;
}

}  // namespace hostq::test
