// The small owners in src/common: the fd owner, the result type, the clock, the signal pipe.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "common/monotonic_clock.hpp"
#include "common/result.hpp"
#include "common/signal_pipe.hpp"
#include "common/unique_fd.hpp"

namespace hostq {
namespace {

bool fdOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFd, ClosesOnceAndMovesOwnership) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[1]);
  {
    UniqueFd a(p[0]);
    EXPECT_TRUE(a.valid());
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), p[0]);
    UniqueFd c;
    c = std::move(b);
    EXPECT_TRUE(fdOpen(p[0]));
  }
  EXPECT_FALSE(fdOpen(p[0]));

  ASSERT_EQ(::pipe(p), 0);
  UniqueFd keep(p[0]);
  const int raw = keep.release();
  EXPECT_FALSE(keep.valid());
  EXPECT_TRUE(fdOpen(raw));
  keep.reset(p[1]);
  keep.reset();
  EXPECT_FALSE(fdOpen(p[1]));
  ::close(raw);
}

enum class Errc { Bad };

Result<int, std::string> half(int v) {
  if (v % 2) return Err{"odd: " + std::to_string(v)};
  return v / 2;
}

Result<std::string, Errc> bare(bool ok) {
  if (!ok) return Errc::Bad;  // cannot be read as a string: no Err needed
  return std::string("fine");
}

TEST(Result, HoldsAValueOrAnError) {
  const auto ok = half(8);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 4);
  const auto bad = half(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "odd: 3");
  EXPECT_EQ(bare(true).value(), "fine");
  EXPECT_EQ(bare(false).error(), Errc::Bad);
  EXPECT_EQ(bare(true)->size(), 4u);
}

TEST(MonotonicClock, NeverGoesBack) {
  std::uint64_t last = monotonicNs();
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t now = monotonicNs();
    ASSERT_GE(now, last);
    last = now;
  }
}

TEST(SignalPipe, DeliversSignalsAndWakesAndRestoresTheDefaults) {
  {
    SignalPipe pipe({SIGUSR1, SIGUSR2}, /*nonblocking_read=*/true);
    EXPECT_FALSE(pipe.next());  // nothing yet
    EXPECT_THROW(SignalPipe({SIGUSR1}, true), std::system_error);  // one per process
    ::raise(SIGUSR2);
    ::raise(SIGUSR1);
    pipe.wake();
    EXPECT_EQ(pipe.next(), SIGUSR2);
    EXPECT_EQ(pipe.next(), SIGUSR1);
    EXPECT_EQ(pipe.next(), SignalPipe::kWake);
    EXPECT_FALSE(pipe.next());
  }
  struct sigaction now{};
  ::sigaction(SIGUSR1, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  SignalPipe again({SIGUSR1}, true);  // the first one is gone: a new one may be made
  ::raise(SIGUSR1);
  EXPECT_EQ(again.next(), SIGUSR1);
}

}  // namespace
}  // namespace hostq
