#pragma once
// The only place that issues futex system calls. Always the shared (non-PRIVATE) ops: the words
// live in memory mapped by several processes, possibly at different addresses.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace hostq::shm {

enum class WaitResult { Woken, ValueChanged, TimedOut, Interrupted };

/// Sleeps while `*word == expected`, at most `timeout` (negative = forever).
WaitResult futexWait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                     std::chrono::nanoseconds timeout) noexcept;
/// Wakes up to `count` waiters on `word`; returns how many were woken.
int futexWake(std::atomic<std::uint32_t>* word, int count) noexcept;

}  // namespace hostq::shm
