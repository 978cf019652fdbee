#pragma once
// The self-pipe trick, owned once: a signal handler may only do async-signal-safe things, so it
// writes the signal number to a pipe and a thread or poll loop does the real work outside signal
// context. One SignalPipe per process at a time (the handler has nowhere else to find the pipe).
#include <initializer_list>
#include <optional>
#include <vector>

#include "common/unique_fd.hpp"

namespace hostq {

class SignalPipe {
 public:
  /// Creates the pipe (close-on-exec; the read end non-blocking when `nonblocking_read`) and
  /// installs SA_RESTART handlers for `signals`. Throws std::system_error if the pipe cannot be
  /// made or another SignalPipe is live.
  SignalPipe(std::initializer_list<int> signals, bool nonblocking_read);
  /// Puts the signals back to SIG_DFL, then closes the pipe.
  ~SignalPipe();
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  /// For poll(): readable when a signal (or wake()) is waiting.
  int readFd() const noexcept { return m_read.get(); }
  /// Makes the reader return kWake: a loop's own "stop now", not a signal.
  void wake() noexcept;
  static constexpr int kWake = 0;
  /// The next signal number, or kWake; nullopt when nothing is waiting (non-blocking read end)
  /// or the pipe failed. Retries EINTR.
  std::optional<int> next() noexcept;

 private:
  UniqueFd m_read;
  UniqueFd m_write;
  std::vector<int> m_signals;
};

}  // namespace hostq
