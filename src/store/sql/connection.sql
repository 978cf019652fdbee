-- A connection's session and the schema's migrations.

-- name: session
-- Run first on every new connection. $1 schema ('' = keep the server's search_path), $2 turn
-- hash and merge joins off (the planner workaround of StoreOptions::nested_loop_joins), $3
-- idle_in_transaction_session_timeout in ms (0 = the server's). Timestamps are UTC `timestamp
-- without time zone` (inst-jobs); statements still convert now() explicitly, the session zone
-- only makes ad-hoc SQL (psql, tests) agree. db_now_us samples the database clock once, to
-- validate a stranded run_at without a round trip. The keepalives are the server's side of
-- those PgConnection asks libpq for.
SELECT set_config('search_path', CASE WHEN $1 = '' THEN current_setting('search_path')
                                      ELSE quote_ident($1) END, false),
       set_config('TimeZone', 'UTC', false),
       (extract(epoch FROM clock_timestamp()) * 1000000)::int8 AS db_now_us,
       CASE WHEN $2::bool THEN set_config('enable_hashjoin', 'off', false) END,
       CASE WHEN $2::bool THEN set_config('enable_mergejoin', 'off', false) END,
       CASE WHEN $3::int8 > 0
            THEN set_config('idle_in_transaction_session_timeout', $3::int8::text, false) END,
       set_config('tcp_keepalives_idle', '10', false),
       set_config('tcp_keepalives_interval', '3', false),
       set_config('tcp_keepalives_count', '3', false)

-- name: ping
SELECT 1 AS ok

-- name: listen
LISTEN hostq_jobs

-- name: now_us
-- The transaction's now(): within one transaction, exactly what an insert statement would use.
SELECT (extract(epoch FROM (now() AT TIME ZONE 'UTC')) * 1000000)::int8 AS now_us

-- name: migrate_lock
-- Database-wide, so migrators of different schemas also queue up (harmless, migrations are
-- short). The key is half_md5_as_bigint('hostq:migrate') spelled out: the function may not
-- exist yet.
SELECT pg_advisory_xact_lock(('x' || substr(md5('hostq:migrate'), 1, 16))::bit(64)::bigint)

-- name: migrations_table_exists
SELECT to_regclass('hostq_schema_migrations') IS NOT NULL AS present

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS hostq_schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'))

-- name: schema_version
-- Run through the simple protocol, never prepared: before the first migration the table does
-- not exist, and a statement naming it could not be planned.
SELECT COALESCE(max(version), 0) AS version FROM hostq_schema_migrations

-- name: record_migration
INSERT INTO hostq_schema_migrations (version, name) VALUES ($1::int, $2::text)
