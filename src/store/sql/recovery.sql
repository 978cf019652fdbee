-- Recovery of jobs whose owner is gone, holds, requeues.

-- name: locked_like
-- $1 a LIKE pattern of locked_by (HOST:PID or HOST:%).
SELECT id, locked_by, (extract(epoch FROM locked_at) * 1000000)::int8 AS locked_at_us
  FROM delayed_jobs
 WHERE locked_by LIKE $1::text AND locked_at IS NOT NULL AND locked_by <> 'on hold'
 ORDER BY locked_at, id

-- name: locked_by_any
SELECT id, locked_by FROM delayed_jobs WHERE locked_by = ANY($1::text[]) ORDER BY id

-- name: count_locked_by
SELECT count(*) AS locked FROM delayed_jobs WHERE locked_by = $1::varchar

-- name: clear_locks
UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL WHERE locked_by = $1::varchar

-- name: purge_prefetched
-- inst-jobs' unlock_orphaned_prefetched_jobs: $1 age in seconds. One statement = one
-- transaction, so the xact try-lock is held exactly while the UPDATE runs. got: false when
-- another process holds the lock (and nothing was done).
WITH l AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(half_md5_as_bigint(
                          'Delayed::Job.unlock_orphaned_prefetched_jobs')) AS got),
 u AS (UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL
        WHERE (SELECT got FROM l) AND locked_by LIKE 'prefetch:%'
          AND locked_at < (now() AT TIME ZONE 'UTC') - $1::int8 * interval '1 second' RETURNING 1)
SELECT (SELECT got FROM l) AS got, (SELECT count(*) FROM u) AS unlocked

-- name: hold
UPDATE delayed_jobs SET locked_by = 'on hold', locked_at = (now() AT TIME ZONE 'UTC'), attempts = 50
 WHERE id = ANY($1::int8[]) AND locked_by IS NULL

-- name: unhold
UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL, attempts = 0,
       run_at = GREATEST(run_at, (now() AT TIME ZONE 'UTC')), failed_at = NULL
 WHERE id = ANY($1::int8[]) AND locked_by = 'on hold'

-- name: requeue
-- inst-jobs §6.5: attempts are kept, so the new job runs once. The strand lock precedes the
-- insert as in `insert`. run_at is copied (it is in the past, so the job is runnable now).
WITH f AS (SELECT * FROM failed_jobs WHERE id = $1::int8 FOR UPDATE),
 strand_lock AS (
  SELECT count(*) FROM (SELECT pg_advisory_xact_lock(half_md5_as_bigint(f.strand)) FROM f
                         WHERE f.strand IS NOT NULL) l),
 ins AS (
  INSERT INTO delayed_jobs (priority, attempts, handler, queue, run_at, created_at, updated_at,
    tag, max_attempts, strand, source, expires_at, strand_order_override, singleton)
  SELECT f.priority, f.attempts, f.handler, f.queue, f.run_at, f.created_at,
         (now() AT TIME ZONE 'UTC'), f.tag, f.max_attempts, f.strand, f.source, f.expires_at,
         f.strand_order_override, f.singleton
    FROM f, strand_lock RETURNING id),
 upd AS (UPDATE failed_jobs SET requeued_job_id = (SELECT id FROM ins) WHERE id = $1::int8)
SELECT id FROM ins
