#!/usr/bin/env bash
# hostq beside its peers, in one run, on one throwaway PostgreSQL: graphile-worker in its batched
# mode (the fastest peer measured on this kind of machine), the pgbench lock-50-then-delete
# cycle on the peers' one-index jobs table (the database's own limit for this work), hostq with
# written-lock claims (--held-batches 0, the claim before held-lock batches), the same
# cycle with hostq's statements on hostq's (inst-jobs') schema with its seven indexes
# (perf/peers/hostq-lock-delete.sql: the database alone, no server or workers), and `hostq bench`
# over shared memory and in direct mode. The runs are interleaved (peer, hostq, pgbench, peer, hostq, …) so that noise from
# other tenants falls on all of them alike; medians and same-run ratios are printed.
#
#   usage: perf/peers/compare.sh [--jobs N] [--repeat K] [--workers W] [--out DIR]
#     defaults: 100000 jobs, 3 repeats, 4 hostq workers; graphile-worker runs 1 process x 16
#     (its best stable setting in ../shared/peers/README.md)
#
# Needs the peers' scripts ($HOSTQ_PEERS_DIR, default ../shared/peers from the repository), Node.js
# and npm (graphile-worker is installed with `npm ci` into a copy), pgbench, and a built `hostq`
# ($HOSTQ_BIN, default build/hostq).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEERS_SRC=${HOSTQ_PEERS_DIR:-$ROOT/../shared/peers}
HOSTQ=${HOSTQ_BIN:-$ROOT/build/hostq}
JOBS=100000 REPEAT=3 WORKERS=4 OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) JOBS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$HOSTQ" ] || { echo "no hostq binary at $HOSTQ (build first, or set HOSTQ_BIN)" >&2; exit 2; }
[ -d "$PEERS_SRC" ] || { echo "no peers scripts at $PEERS_SRC (set HOSTQ_PEERS_DIR)" >&2; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "needs node and npm" >&2; exit 2; }
command -v pgbench >/dev/null || { echo "needs pgbench (postgresql-contrib or the server package)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/hq-peers.XXXXXX)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PGD=$WORK/pg
PORT=$((56000 + RANDOM % 1000))
cleanup() {
  [ -e "$PGD/postmaster.pid" ] && "$WORK/peers/pg-down.sh" "$PGD" --purge >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK/peers"
}
trap cleanup EXIT

# The shared folder is read-only: work on a copy, with graphile-worker installed into it.
cp -r "$PEERS_SRC" "$WORK/peers"
rm -rf "$WORK/peers/results"
[ "$(id -u)" = 0 ] && chown -R postgres: "$WORK" 2>/dev/null || true
(cd "$WORK/peers/graphile-worker" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
  || { echo "npm ci of graphile-worker failed (is the npm registry reachable?)" >&2; exit 1; }
"$WORK/peers/pg-up.sh" "$PGD" "$PORT" >/dev/null
export PGHOST=$PGD PGPORT=$PORT PGUSER=postgres PGDATABASE=bench
URL="postgresql:///bench?host=$PGD&port=$PORT&user=postgres"
"$HOSTQ" migrate --database-url "$URL" >/dev/null
psql -qAt -f "$WORK/peers/pgbench/jobs-schema.sql" >/dev/null 2>&1

pg_ticks() {  # postmaster self + reaped children + live children (as the peers' measure.sh)
  local pm t f pid
  pm=$(head -1 "$PGD/postmaster.pid")
  read -r -a f < <(sed 's/^.*) //' /proc/$pm/stat)
  t=$(( f[11] + f[12] + f[13] + f[14] ))
  for pid in $(cat /proc/$pm/task/$pm/children 2>/dev/null); do
    if read -r -a f < <(sed 's/^.*) //' /proc/$pid/stat 2>/dev/null); then t=$(( t + f[11] + f[12] )); fi
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
RES=$OUT/runs.tsv
printf 'round\tsystem\tjobs\tseconds\tjobs_per_s\tpg_cpu_us_per_job\tload_1m\n' >"$RES"

run_gw() {
  local line
  line=$(cd "$WORK/peers" && node graphile-worker/driver.js run --jobs "$JOBS" --procs 1 --concurrency 16 --mode batched 2>>"$OUT/gw.err" | tail -1)
  node -e 'const r=JSON.parse(process.argv[1]); console.log([r.jobs, r.seconds, r.jobs_per_s, (r.pg_cpu_s*1e6/r.jobs).toFixed(1)].join("\t"))' "$line"
}
run_hostq() {  # $1 = transport, $2 = jobs, then more `hostq bench` flags
  local line t=$1 n=$2
  shift 2
  line=$("$HOSTQ" bench --database-url "$URL" --transport "$t" --workers "$WORKERS" --jobs "$n" --json --timeout 600 "$@" 2>>"$OUT/hostq.err" | tail -1)
  echo "$line" >>"$OUT/hostq-runs.jsonl"  # every key of the run: statements and xact_commit per job, batches, CPU
  node -e 'const r=JSON.parse(process.argv[1]); console.log([r.jobs, r.elapsed_s, Math.round(r.jobs_per_second), (+r.cpu_postgres_us_per_job).toFixed(1)].join("\t"))' "$line"
}
run_pgbench() {  # the peers' (c) cycle at 4 clients: fixed work, 90% of a fresh 200k-row table
  psql -qAt -f "$WORK/peers/pgbench/jobs-schema.sql" >/dev/null 2>&1
  psql -qAt -c CHECKPOINT >/dev/null
  local n=180000 t0 t1 p0 p1 secs
  p0=$(pg_ticks); t0=$(date +%s.%N)
  pgbench -n -M prepared -f "$WORK/peers/pgbench/lock-complete-50.sql" -c 4 -j 2 -t $((n / 50 / 4)) bench >"$OUT/pgbench.last" 2>&1
  t1=$(date +%s.%N); p1=$(pg_ticks)
  secs=$(echo "$t1 - $t0" | bc -l)
  printf '%d\t%.3f\t%.0f\t%.1f\n' "$n" "$secs" "$(echo "$n / $secs" | bc -l)" "$(echo "($p1 - $p0) * 1000000 / $HZ / $n" | bc -l)"
}

run_pgbench_hostq() {  # hostq's own statements on hostq's schema, 2 clients (reserver + writer)
  local n=$JOBS batch=2000 t0 t1 p0 p1 secs
  psql -qAt -c "DROP SCHEMA IF EXISTS hq_pgbench CASCADE; CREATE SCHEMA hq_pgbench" >/dev/null 2>&1
  "$HOSTQ" --database-url "$URL" --schema hq_pgbench migrate >/dev/null
  "$HOSTQ" --database-url "$URL" --schema hq_pgbench enqueue hostq.noop --count "$n" >/dev/null
  psql -qAt -c "VACUUM ANALYZE hq_pgbench.delayed_jobs" -c CHECKPOINT >/dev/null
  p0=$(pg_ticks); t0=$(date +%s.%N)
  PGOPTIONS="-c search_path=hq_pgbench" pgbench -n -M prepared -D batch=$batch -f "$ROOT/perf/peers/hostq-lock-delete.sql" \
    -c 2 -j 2 -t $((n / batch / 2)) bench >"$OUT/pgbench-hostq.last" 2>&1
  t1=$(date +%s.%N); p1=$(pg_ticks)
  secs=$(echo "$t1 - $t0" | bc -l)
  printf '%d\t%.3f\t%.0f\t%.1f\n' "$n" "$secs" "$(echo "$n / $secs" | bc -l)" "$(echo "($p1 - $p0) * 1000000 / $HZ / $n" | bc -l)"
}

# Direct mode is ~30x slower: a tenth of the jobs keeps its runs short and its rate the same.
DIRECT_JOBS=$(( JOBS / 10 > 2000 ? JOBS / 10 : 2000 ))
for r in $(seq 1 "$REPEAT"); do
  for sys in graphile-worker-batched hostq-shm pgbench-lock50 hostq-shm-written pgbench-hostq-schema hostq-direct; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    case $sys in
      graphile-worker-batched) row=$(run_gw) ;;
      hostq-shm) row=$(run_hostq shm "$JOBS") ;;
      hostq-shm-written) row=$(run_hostq shm "$JOBS" --held-batches 0) ;;
      hostq-direct) row=$(run_hostq direct "$DIRECT_JOBS") ;;
      pgbench-lock50) row=$(run_pgbench) ;;
      pgbench-hostq-schema) row=$(run_pgbench_hostq) ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$r" "$sys" "$row" "$load" | tee -a "$RES" >&2
  done
done

node - "$RES" "$JOBS" "$WORKERS" <<'JS' | tee "$OUT/summary.md"
const fs = require('fs');
const [file, jobs, workers] = process.argv.slice(2);
const rows = fs.readFileSync(file, 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const by = {};
for (const [round, sys, n, secs, jps, pgus, load] of rows) (by[sys] ||= []).push({ jps: +jps, pgus: +pgus, load: +load });
const m = {};
console.log(`Medians of ${rows.length / Object.keys(by).length} interleaved rounds (${jobs} jobs; hostq ${workers} workers; graphile-worker 1 x 16 batched):\n`);
console.log('| system | runs | jobs/s (median) | runs (jobs/s) | PostgreSQL CPU µs/job (median) |');
console.log('|---|---:|---:|---|---:|');
for (const [sys, v] of Object.entries(by)) {
  m[sys] = { jps: med(v.map((x) => x.jps)), pgus: med(v.map((x) => x.pgus)) };
  console.log(`| ${sys} | ${v.length} | ${Math.round(m[sys].jps).toLocaleString('en')} | ${v.map((x) => x.jps.toLocaleString('en')).join(', ')} | ${m[sys].pgus.toFixed(1)} |`);
}
const h = m['hostq-shm'];
console.log('');
if (h && m['graphile-worker-batched']) console.log(`hostq shm / graphile-worker batched: ${(h.jps / m['graphile-worker-batched'].jps).toFixed(2)}x (goal >= 2x)`);
if (h && m['hostq-shm-written']) console.log(`hostq shm held-lock / written-lock claims: ${(h.jps / m['hostq-shm-written'].jps).toFixed(2)}x; PostgreSQL CPU ${h.pgus.toFixed(1)} vs ${m['hostq-shm-written'].pgus.toFixed(1)} µs/job`);
if (h && m['hostq-direct']) console.log(`hostq shm / hostq direct: ${(h.jps / m['hostq-direct'].jps).toFixed(1)}x (goal >= 10x)`);
if (h && m['pgbench-lock50']) console.log(`hostq shm / pgbench lock-50-then-delete (peers' 1-index jobs table): ${(h.jps / m['pgbench-lock50'].jps).toFixed(2)}x`);
if (h && m['pgbench-hostq-schema']) console.log(`hostq shm / pgbench of hostq's own statements on its schema (the database alone): ${(h.jps / m['pgbench-hostq-schema'].jps).toFixed(2)}x`);
if (h) console.log(`hostq shm / inst-jobs ParentProcess (390 jobs/s, ../shared/reference/peers.md; not re-run): ${(h.jps / 390).toFixed(0)}x (goal >= 100x)`);
JS
echo "raw runs: $RES" >&2
