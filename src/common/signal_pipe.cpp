#include "common/signal_pipe.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

namespace hostq {

namespace {

// The handler's only way to the pipe. Lock-free, so reading it in a handler is safe.
std::atomic<int> g_writeFd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void onSignalToPipe(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  if (const int fd = g_writeFd.load(std::memory_order_relaxed); fd >= 0) {
    [[maybe_unused]] auto n = ::write(fd, &b, 1);  // pipe full: a byte is already waiting
  }
  errno = saved;
}

}  // namespace

SignalPipe::SignalPipe(std::initializer_list<int> signals, bool nonblocking_read) : m_signals(signals) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  m_read.reset(fds[0]);
  m_write.reset(fds[1]);
  // The write end never blocks: a handler stuck on a full pipe would hang the thread it interrupted.
  ::fcntl(m_write.get(), F_SETFL, O_NONBLOCK);
  if (nonblocking_read) ::fcntl(m_read.get(), F_SETFL, O_NONBLOCK);
  int expected = -1;
  if (!g_writeFd.compare_exchange_strong(expected, m_write.get()))
    throw std::system_error(EBUSY, std::generic_category(), "another SignalPipe is live");
  struct sigaction sa{};
  sa.sa_handler = onSignalToPipe;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : m_signals) ::sigaction(s, &sa, nullptr);
}

SignalPipe::~SignalPipe() {
  for (int s : m_signals) ::signal(s, SIG_DFL);
  g_writeFd.store(-1);
}

void SignalPipe::wake() noexcept {
  const unsigned char zero = kWake;
  [[maybe_unused]] auto n = ::write(m_write.get(), &zero, 1);
}

std::optional<int> SignalPipe::next() noexcept {
  for (;;) {
    unsigned char b = 0;
    const auto n = ::read(m_read.get(), &b, 1);
    if (n == 1) return static_cast<int>(b);
    if (n < 0 && errno == EINTR) continue;
    return std::nullopt;
  }
}

}  // namespace hostq
