-- The operator's statements (admin_store.hpp): $1..$4 select the jobs (fragment job_selection).

-- name: admin_list
-- $5 state (NULL = any live state), $6 limit. Runnable jobs by id, then future ones by run_at:
-- two branches, each able to stop after $6 rows of an index (the primary key; run_at) instead of
-- sorting the whole table, in one statement and so one snapshot.
SELECT * FROM (
  (SELECT {{delayed_job_columns}}, {{job_state}} AS state, 0 AS part, run_at AS sort_at, id AS sort_id
     FROM delayed_jobs
    WHERE {{job_selection}} AND ($5::text IS NULL OR {{job_state}} = $5::text)
      AND run_at <= (now() AT TIME ZONE 'UTC')
    ORDER BY id LIMIT $6::int)
  UNION ALL
  (SELECT {{delayed_job_columns}}, {{job_state}} AS state, 1 AS part, run_at AS sort_at, id AS sort_id
     FROM delayed_jobs
    WHERE {{job_selection}} AND ($5::text IS NULL OR {{job_state}} = $5::text)
      AND run_at > (now() AT TIME ZONE 'UTC')
    ORDER BY run_at, id LIMIT $6::int)) l
 ORDER BY part, CASE WHEN part = 1 THEN sort_at END, sort_id
 LIMIT $6::int

-- name: admin_list_failed
-- $5 limit; the ids of the selection are failed_jobs ids.
SELECT {{failed_job_columns}} FROM failed_jobs WHERE {{job_selection}} ORDER BY id DESC LIMIT $5::int

-- name: admin_hold
UPDATE delayed_jobs SET locked_by = 'on hold', locked_at = (now() AT TIME ZONE 'UTC'), attempts = 50
 WHERE {{job_selection}} AND locked_by IS NULL

-- name: admin_unhold
UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL, attempts = 0,
       run_at = GREATEST(run_at, (now() AT TIME ZONE 'UTC')), failed_at = NULL
 WHERE {{job_selection}} AND locked_by = 'on hold'

-- name: admin_destroy
-- A plain DELETE: the AFTER DELETE trigger promotes the strand's or singleton's successor, as
-- when a worker completes a job. Locked rows are left alone; one a reservation locks meanwhile
-- is re-checked by PostgreSQL after the row lock and skipped.
DELETE FROM delayed_jobs WHERE {{job_selection}} AND (locked_by IS NULL OR locked_by = 'on hold')

-- name: admin_destroy_failed
DELETE FROM failed_jobs WHERE {{job_selection}}

-- name: admin_cleanup_failed
-- $1 age in seconds, $2 batch size: bounded transactions on a table that may hold millions.
WITH d AS (DELETE FROM failed_jobs WHERE id IN (
    SELECT id FROM failed_jobs
     WHERE failed_at < (now() AT TIME ZONE 'UTC') - $1::int8 * interval '1 second' LIMIT $2::int)
  RETURNING 1)
SELECT count(*) AS deleted FROM d
