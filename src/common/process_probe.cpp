#include "common/process_probe.hpp"

#include "common/proc_stat.hpp"

namespace hostq {

std::optional<ProcessIdentity> probeProcess(int pid) {
  const auto s = readProcStat(pid);
  if (!s) return std::nullopt;
  return ProcessIdentity{s->start_ticks, s->exiting(), s->ppid, s->state};
}

bool stillRunning(int pid, const ProcessIdentity& id) {
  const auto now = probeProcess(pid);
  return now && !now->exiting && now->start_ticks == id.start_ticks;
}

}  // namespace hostq
