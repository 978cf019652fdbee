#pragma once
// Waiting in tests: poll a condition with a deadline instead of sleeping a fixed time.
#include <chrono>
#include <functional>

namespace hostq::test {

/// Polls `cond` (with a short back-off) until it is true or `timeout` passes; returns its last value.
bool waitUntil(const std::function<bool()>& cond,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace hostq::test
