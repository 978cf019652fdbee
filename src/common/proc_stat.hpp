#pragma once
// The one reader of /proc/PID/stat (proc(5)): liveness and identity for the server, CPU time for
// the benchmarks, process trees for the tests.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hostq {

/// The fields of /proc/PID/stat that hostq uses (numbered as in proc(5)).
struct ProcStat {
  int pid = 0;                     ///< 1
  std::string comm;                ///< 2: up to 15 bytes; may hold spaces and parentheses
  char state = 0;                  ///< 3: R, S, D, Z (exited, not yet waited for), X...
  int ppid = 0;                    ///< 4
  unsigned long flags = 0;         ///< 9: PF_* bits
  std::uint64_t utime = 0;         ///< 14, clock ticks
  std::uint64_t stime = 0;         ///< 15
  std::uint64_t cutime = 0;        ///< 16: children waited for
  std::uint64_t cstime = 0;        ///< 17
  std::uint64_t start_ticks = 0;   ///< 22: start time since boot; a reused pid has another

  std::uint64_t ticks() const noexcept { return utime + stime; }
  std::uint64_t childTicks() const noexcept { return cutime + cstime; }
  /// Exited and not yet reaped (or being torn down): runs nothing any more.
  bool zombie() const noexcept { return state == 'Z' || state == 'X' || state == 'x'; }
  /// A zombie, or PF_EXITING: closing its fds right now, so a closed socket may still show it.
  bool exiting() const noexcept;
};

/// Parses the text of one /proc/PID/stat; nullopt when it is not one.
std::optional<ProcStat> parseProcStat(std::string_view text);
/// nullopt: no such process (or /proc unreadable).
std::optional<ProcStat> readProcStat(int pid);
/// Every process that could be read (processes that exit meanwhile are left out).
std::vector<ProcStat> listProcesses();
/// The processes whose parent is `parent`, zombies included.
std::vector<ProcStat> childProcesses(int parent);

}  // namespace hostq
