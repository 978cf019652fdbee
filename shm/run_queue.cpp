#include "shm/run_queue.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>

namespace hostq::shm {

std::uint32_t parseRunnable(std::string_view s) noexcept {
  // Skip the three load averages; the fourth field is "running/total".
  for (int field = 0; field < 3; ++field) {
    const auto space = s.find(' ');
    if (space == std::string_view::npos) return 0;
    s.remove_prefix(space + 1);
  }
  std::uint32_t running = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), running);
  if (ec != std::errc{} || end == s.data() + s.size() || *end != '/') return 0;
  return running;
}

RunQueueSampler::RunQueueSampler() noexcept
    : m_fd(::open("/proc/loadavg", O_RDONLY | O_CLOEXEC)) {}

std::uint32_t RunQueueSampler::sample(std::uint64_t nowNs) noexcept {
  if (m_fd.get() < 0 || nowNs < m_nextNs) return m_last;
  m_nextNs = nowNs + kPeriodNs;
  char buf[128];
  const ssize_t n = ::pread(m_fd.get(), buf, sizeof buf - 1, 0);
  m_last = n > 0 ? parseRunnable(std::string_view(buf, static_cast<std::size_t>(n))) : 0;
  return m_last;
}

}  // namespace hostq::shm
