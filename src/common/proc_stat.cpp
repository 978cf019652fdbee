#include "common/proc_stat.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>

namespace hostq {

namespace {

constexpr unsigned long kPfExiting = 0x00000004;  // include/linux/sched.h

template <class T>
bool parseNumber(std::string_view s, T& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

bool ProcStat::exiting() const noexcept { return zombie() || (flags & kPfExiting) != 0; }

std::optional<ProcStat> parseProcStat(std::string_view text) {
  // "pid (comm) state ppid ...": comm may hold spaces and ')', so the fields resume after the
  // last ')'.
  const auto open = text.find(" (");
  const auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open ||
      close + 2 >= text.size() || text[close + 1] != ' ')
    return std::nullopt;
  ProcStat s;
  if (!parseNumber(text.substr(0, open), s.pid)) return std::nullopt;
  s.comm = std::string(text.substr(open + 2, close - open - 2));
  std::string_view rest = text.substr(close + 2);
  int field = 3;
  while (!rest.empty() && field <= 22) {
    const auto sp = rest.find_first_of(" \n");
    const std::string_view f = rest.substr(0, sp);
    bool ok = true;
    switch (field) {
      case 3: ok = f.size() == 1; s.state = f.empty() ? 0 : f[0]; break;
      case 4: ok = parseNumber(f, s.ppid); break;
      case 9: ok = parseNumber(f, s.flags); break;
      case 14: ok = parseNumber(f, s.utime); break;
      case 15: ok = parseNumber(f, s.stime); break;
      case 16: ok = parseNumber(f, s.cutime); break;
      case 17: ok = parseNumber(f, s.cstime); break;
      case 22: ok = parseNumber(f, s.start_ticks); break;
      default: break;
    }
    if (!ok) return std::nullopt;
    ++field;
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
  }
  if (field <= 22) return std::nullopt;  // truncated
  return s;
}

std::optional<ProcStat> readProcStat(int pid) {
  if (pid <= 0) return std::nullopt;
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  // One read(2): the kernel writes the line in one go, and the server calls this when a worker's
  // socket closes, so no stream machinery.
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  return parseProcStat(std::string_view(buf, static_cast<std::size_t>(n)));
}

std::vector<ProcStat> listProcesses() {
  std::vector<ProcStat> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (const dirent* e = ::readdir(d)) {
    int pid = 0;
    if (!parseNumber(std::string_view(e->d_name), pid)) continue;
    if (auto s = readProcStat(pid)) out.push_back(std::move(*s));
  }
  ::closedir(d);
  return out;
}

std::vector<ProcStat> childProcesses(int parent) {
  std::vector<ProcStat> out;
  for (auto& p : listProcesses())
    if (p.ppid == parent) out.push_back(std::move(p));
  return out;
}

}  // namespace hostq
