#pragma once
// Waiting in tests: poll a condition with a deadline instead of sleeping a fixed time. The one
// polling helper of the suite.
#include <chrono>
#include <functional>

namespace hostq::test {

/// Polls `cond` (with a short back-off) until it is true or `timeout` passes; returns its last value.
bool waitUntil(const std::function<bool()>& cond,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// The same with a fixed pause of `interval` between polls, for conditions that are costly to
/// evaluate (a query, a process spawn): polling them every few ms would load a 2-core machine.
bool waitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval);

/// The interval for a condition that runs `hostq` or queries the database.
inline constexpr std::chrono::milliseconds kCostlyPoll{50};

}  // namespace hostq::test
