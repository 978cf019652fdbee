#!/usr/bin/env bash
# Where the CPU of a no-op burn-down goes, in instructions per job (this VM has no hardware
# counters, so callgrind's instruction counts stand in for cycles). The server and one of the
# workers run under callgrind; the other workers run natively so that the server sees a real
# farm's traffic. Prints Ir per job for both, and the top functions (inclusive and self).
#
#   usage: perf/profile/callgrind.sh [--jobs N] [--workers W] [--out DIR]   (defaults 20000, 4)
# Needs valgrind, a built hostq ($HOSTQ_BIN, default build/hostq) and a database
# (HOSTQ_DATABASE_URL; else a throwaway cluster from scripts/pg.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HOSTQ=${HOSTQ_BIN:-$ROOT/build/hostq}
JOBS=20000 WORKERS=4 OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) JOBS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 2; }
WORK=$(mktemp -d /tmp/hq-cg.XXXXXX)
chmod 700 "$WORK"
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ -n "${STARTED_PG:-}" ]; then pg_down; fi
}
trap cleanup EXIT
if [ -z "${HOSTQ_DATABASE_URL:-}" ]; then
  . "$ROOT/scripts/pg.sh"
  pg_up >/dev/null
  STARTED_PG=1
  export HOSTQ_DATABASE_URL=$HOSTQ_PG_URL
fi
SCHEMA=hq_callgrind
psql "$HOSTQ_DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA" >/dev/null
H=("$HOSTQ" --schema "$SCHEMA" --socket "$WORK/s.sock" --hostname cg)
"${H[@]}" migrate >/dev/null
"${H[@]}" enqueue hostq.noop --count "$JOBS" >/dev/null
psql "$HOSTQ_DATABASE_URL" -qc "VACUUM ANALYZE $SCHEMA.delayed_jobs" >/dev/null

CG=(valgrind --tool=callgrind --quiet --separate-threads=no)
"${CG[@]}" --callgrind-out-file="$OUT/callgrind.server" "${H[@]}" server >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do [ -S "$WORK/s.sock" ] && break; sleep 0.1; done
[ -S "$WORK/s.sock" ] || { cat "$WORK/server.log" >&2; exit 1; }
# --workers is the group's size (part of the grouping key), as in a pool; each process is one worker.
"${CG[@]}" --callgrind-out-file="$OUT/callgrind.worker" "${H[@]}" worker --workers "$WORKERS" --builtin-handlers \
  >"$WORK/worker0.log" 2>&1 &
PIDS+=($!)
for i in $(seq 2 "$WORKERS"); do
  "${H[@]}" worker --workers "$WORKERS" --builtin-handlers >"$WORK/worker$i.log" 2>&1 &
  PIDS+=($!)
done
t0=$(date +%s)
while [ "$(psql "$HOSTQ_DATABASE_URL" -qtAc "SELECT count(*) FROM $SCHEMA.delayed_jobs")" != 0 ]; do
  sleep 0.5
  [ $(( $(date +%s) - t0 )) -lt 1800 ] || { echo "burn-down did not finish" >&2; exit 1; }
done
# Workers first (they flush and say goodbye), then the server; callgrind writes on exit.
for ((i = ${#PIDS[@]} - 1; i >= 1; i--)); do kill -QUIT "${PIDS[$i]}" 2>/dev/null || true; wait "${PIDS[$i]}" 2>/dev/null || true; done
kill -QUIT "${PIDS[0]}" 2>/dev/null || true
wait "${PIDS[0]}" 2>/dev/null || true
PIDS=()
JOBS_SERVER=$JOBS
JOBS_WORKER=$(grep -oE "exiting after [0-9]+ jobs" "$WORK/worker0.log" | tail -1 | grep -oE "[0-9]+" || true)
report() {  # $1 file, $2 jobs, $3 label
  local total
  # No early exit in awk: with pipefail, callgrind_annotate's SIGPIPE would fail the pipeline.
  total=$(callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",","",$1); t=$1} END {print t+0}')
  echo "## $3: $(printf "%'d" "$total") Ir in all; $2 jobs; $(( total / ($2 > 0 ? $2 : 1) )) Ir/job"
  echo
  echo '```'
  echo "self (top 25):"
  callgrind_annotate "$1" 2>/dev/null | awk '/file:function/ {on=1; next} on && NF {print; if (++n == 25) on=0}'
  echo
  echo "inclusive (top 25):"
  callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk '/file:function/ {on=1; next} on && NF {print; if (++n == 25) on=0}'
  echo '```'
  echo
}
{
  report "$OUT/callgrind.server" "$JOBS_SERVER" "server (hostq server)"
  report "$OUT/callgrind.worker" "${JOBS_WORKER:-0}" "one worker (hostq worker --workers 1)"
} | tee "$OUT/summary.md"
echo "files: $OUT/callgrind.server, $OUT/callgrind.worker (kcachegrind / callgrind_annotate)" >&2
