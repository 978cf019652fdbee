#include "common/process_probe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace hostq {

namespace {
constexpr unsigned long kPfExiting = 0x00000004;  // include/linux/sched.h
}

std::optional<ProcessIdentity> probeProcess(int pid) {
  if (pid <= 0) return std::nullopt;
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ') return std::nullopt;
  p += 2;
  ProcessIdentity id;
  const char state = *p;
  id.state = state;
  unsigned long flags = 0;
  for (int field = 3; field <= 22 && *p; ++field) {
    char* end = nullptr;
    if (field == 4) id.parent = static_cast<int>(std::strtol(p, &end, 10));
    if (field == 9) flags = std::strtoul(p, &end, 10);
    if (field == 22) id.start_ticks = std::strtoull(p, &end, 10);
    p = std::strchr(p, ' ');
    if (!p) break;
    ++p;
  }
  id.exiting = state == 'Z' || state == 'X' || state == 'x' || (flags & kPfExiting) != 0;
  return id;
}

bool stillRunning(int pid, const ProcessIdentity& id) {
  const auto now = probeProcess(pid);
  return now && !now->exiting && now->start_ticks == id.start_ticks;
}

}  // namespace hostq
