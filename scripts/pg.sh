# Throwaway PostgreSQL for tests, the demo and benchmarks. Source this file, then:
#   pg_up          → starts a cluster in a fresh temp dir; sets HOSTQ_PG_DIR and HOSTQ_PG_URL
#   pg_down        → stops it and removes the dir
# initdb runs as the unprivileged "postgres" system user when we are root (PostgreSQL refuses
# root). The server listens on a Unix socket inside its own directory only (no TCP); fsync and
# every other durability setting stay at their defaults.
pg_bindir() {
  local d
  d=$(pg_config --bindir 2>/dev/null || true)
  [ -x "$d/initdb" ] || d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  echo "$d"
}
pg_up() {
  local bin; bin=$(pg_bindir)
  HOSTQ_PG_DIR=$(mktemp -d /tmp/hostq-pg.XXXXXX)
  local runas=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$HOSTQ_PG_DIR"
    runas=(runuser -u postgres --)
  fi
  chmod 700 "$HOSTQ_PG_DIR"
  "${runas[@]}" "$bin/initdb" -D "$HOSTQ_PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C \
    >"$HOSTQ_PG_DIR/initdb.log" 2>&1 || { cat "$HOSTQ_PG_DIR/initdb.log" >&2; return 1; }
  cat >>"$HOSTQ_PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$HOSTQ_PG_DIR'
max_connections = 300
shared_buffers = 128MB
log_min_messages = warning
CONF
  "${runas[@]}" "$bin/pg_ctl" -D "$HOSTQ_PG_DIR/data" -l "$HOSTQ_PG_DIR/server.log" -w -t 60 start >/dev/null \
    || { cat "$HOSTQ_PG_DIR/server.log" >&2; return 1; }
  HOSTQ_PG_URL="postgresql:///postgres?host=$HOSTQ_PG_DIR&user=postgres"
  export HOSTQ_PG_DIR HOSTQ_PG_URL
}
pg_down() {
  [ -n "${HOSTQ_PG_DIR:-}" ] && [ -d "$HOSTQ_PG_DIR" ] || return 0
  local bin; bin=$(pg_bindir)
  local runas=()
  [ "$(id -u)" = 0 ] && runas=(runuser -u postgres --)
  "${runas[@]}" "$bin/pg_ctl" -D "$HOSTQ_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf -- "$HOSTQ_PG_DIR"
  unset HOSTQ_PG_DIR HOSTQ_PG_URL
}
