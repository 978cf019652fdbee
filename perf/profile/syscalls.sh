#!/usr/bin/env bash
# Syscalls and context switches per job of a no-op burn-down, by process kind (hostq server,
# hostq worker, postgres). On a VM where a syscall costs ~1 µs, these counts, not instructions,
# were most of hostq's CPU per job (docs/performance.md, "Several jobs per request").
# The kernel's tracepoints are counted system-wide while `hostq bench` runs; tracing slows the
# run, so read the counts per job, not its jobs/s.
#
#   usage: perf/profile/syscalls.sh [--jobs N] [--workers W] [-- extra bench flags]  (200000, 4)
# Needs linux-perf (tracepoints readable: run as root or lower kernel.perf_event_paranoid), a
# built hostq ($HOSTQ_BIN, default build/hostq) and a database (HOSTQ_DATABASE_URL; else a
# throwaway cluster from scripts/pg.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HOSTQ=${HOSTQ_BIN:-$ROOT/build/hostq}
JOBS=200000 WORKERS=4 EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) JOBS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "needs perf (Debian package linux-perf)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/hq-sc.XXXXXX)
cleanup() {
  if [ -n "${STARTED_PG:-}" ]; then pg_down; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
URL=${HOSTQ_DATABASE_URL:-}
if [ -z "$URL" ]; then
  . "$ROOT/scripts/pg.sh"
  pg_up
  STARTED_PG=1
  URL=$HOSTQ_PG_URL
fi
# perf's own writes are filtered out by pid: bash execs perf, so $$ is perf's pid.
bash -c 'exec perf record -q -a -m 1024 -e raw_syscalls:sys_enter -e sched:sched_switch \
           --filter "common_pid != $$" -o "$0" -- "${@}"' "$WORK/perf.data" \
  "$HOSTQ" bench --transport shm --workers "$WORKERS" --jobs "$JOBS" --json --database-url "$URL" \
  --schema hostq_syscalls "${EXTRA[@]}" >"$WORK/bench.json" 2>/dev/null
python3 - "$WORK/bench.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("bench (traced): %.0f jobs/s, server %.2f, workers %.2f, postgres %.2f CPU µs/job" % (
    r["jobs_per_second"], r["cpu_server_us_per_job"], r["cpu_workers_us_per_job"], r["cpu_postgres_us_per_job"]))
EOF
perf script -i "$WORK/perf.data" -F comm,event,trace 2>/dev/null | python3 -c "
import collections, re, sys
names = {0: 'read', 1: 'write', 7: 'poll', 17: 'pread64', 18: 'pwrite64', 44: 'sendto', 45: 'recvfrom',
         202: 'futex', 232: 'epoll_wait', 281: 'epoll_pwait', 230: 'clock_nanosleep', 271: 'ppoll'}
counts = collections.Counter()
for line in sys.stdin:
    comm = line[:16].strip()
    if comm.startswith('hostq server'): who = 'hostq server'
    elif comm.startswith('hostq worker'): who = 'hostq worker'
    elif comm.startswith('postgres'): who = 'postgres'
    else: continue
    if 'sched_switch' in line:
        counts[(who, 'context switch')] += 1
        continue
    m = re.search(r'NR (\d+)', line)
    if m:
        n = int(m.group(1))
        counts[(who, 'syscall')] += 1
        counts[(who, names.get(n, 'NR %d' % n))] += 1
jobs = $JOBS
for (who, what), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1])):
    if n / jobs >= 0.005: print('%-13s %-16s %7.3f per job' % (who, what, n / jobs))
"
