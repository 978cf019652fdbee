#pragma once
// Is a process on this host still alive, and still the same process? Read from /proc/PID/stat,
// because kill(pid, 0) says yes for a zombie and for a process in the middle of exiting, which is
// exactly when a server sees its worker's socket close.
#include <optional>

namespace hostq {

struct ProcessIdentity {
  unsigned long long start_ticks = 0;  ///< field 22: start time since boot, in clock ticks
  bool exiting = false;                ///< zombie, dead, or PF_EXITING (closing its fds now)
  int parent = 0;                      ///< field 4: ppid
  char state = 0;                      ///< field 3: R, S, D, Z (exited, not yet waited for)...
};

/// nullopt: no such process (or /proc unreadable).
std::optional<ProcessIdentity> probeProcess(int pid);

/// The process that `id` described still runs: same start time, not exiting. A reused pid has
/// another start time.
bool stillRunning(int pid, const ProcessIdentity& id);

}  // namespace hostq
