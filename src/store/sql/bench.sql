-- `hostq bench`'s monitor connection: the burn-down poll and the pg_stat readings.

-- name: bench_poll
-- From the last id seen: the index descent skips the dead entries of finished jobs.
SELECT id FROM delayed_jobs WHERE id >= $1::bigint ORDER BY id LIMIT 1

-- name: bench_first_id
SELECT coalesce(min(id), 0) AS id FROM delayed_jobs

-- name: bench_job_count
SELECT count(*) AS jobs FROM delayed_jobs

-- name: bench_backend_pid
SELECT pg_backend_pid() AS pid

-- name: bench_other_clients
SELECT count(*) AS clients FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()

-- name: bench_flush_stats
-- Our backend's counters reach the shared stats at most once a second unless forced.
SELECT pg_stat_force_next_flush()

-- name: bench_xact_commit
SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()

-- name: bench_jobs_left
-- What a burn-down that timed out left, and who holds it.
SELECT count(*) || ' jobs left, lowest id ' || coalesce(min(id)::text, '-') || ', locked by: '
       || coalesce(string_agg(DISTINCT coalesce(locked_by, '(nobody)'), ', '), '-') AS summary
  FROM delayed_jobs

-- name: bench_discard
DELETE FROM delayed_jobs

-- name: bench_vacuum
-- Runs outside a transaction block: through PgConnection::simple, never prepared for use.
VACUUM ANALYZE delayed_jobs

-- name: bench_connections_by_application
-- Backends of this database per hostq application name (`hostq bench --hosts`: the host is the
-- name's last word).
SELECT application_name, count(*) AS n FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend'
   AND application_name LIKE 'hostq %'
 GROUP BY 1
