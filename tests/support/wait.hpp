#pragma once
// Waiting in tests: poll a condition with a deadline instead of sleeping a fixed time. The one
// polling helper of the suite.
#include <sys/types.h>

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

/// True while the main thread of `pid` is blocked in nanosleep or clock_nanosleep: for a worker
/// running `hostq.sleep`, its job has begun, not only been handed to it (a job may be handed to
/// a worker, its lock written under the worker's name, before the worker takes it from its ring;
/// killed then, the worker never began it and the server gives it back instead of "process died").
bool sleepingInHandler(pid_t pid);

/// The interval for a condition that runs `hostq` or queries the database.
inline constexpr std::chrono::milliseconds kCostlyPoll{50};

}  // namespace hostq::test
