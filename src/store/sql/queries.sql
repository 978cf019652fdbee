-- Reads for applications and the dashboard.

-- name: find
SELECT {{delayed_job_columns}} FROM delayed_jobs WHERE id = $1::int8

-- name: find_failed
-- $1 a failed_jobs id or the id the job had in delayed_jobs (the latter wins).
SELECT {{failed_job_columns}} FROM failed_jobs
 WHERE original_job_id = $1::int8 OR id = $1::int8
 ORDER BY (original_job_id = $1::int8) DESC, id DESC LIMIT 1

-- Store::list: $1 the key ('' = any queue for the first four), $2 limit, $3 offset.

-- name: list_current
SELECT {{delayed_job_columns}} FROM delayed_jobs
 WHERE ($1::text = '' OR queue = $1::text) AND run_at <= (now() AT TIME ZONE 'UTC')
 ORDER BY id LIMIT $2::int OFFSET $3::int

-- name: list_future
SELECT {{delayed_job_columns}} FROM delayed_jobs
 WHERE ($1::text = '' OR queue = $1::text) AND run_at > (now() AT TIME ZONE 'UTC')
 ORDER BY run_at, id LIMIT $2::int OFFSET $3::int

-- name: list_running
SELECT {{delayed_job_columns}} FROM delayed_jobs
 WHERE ($1::text = '' OR queue = $1::text) AND locked_at IS NOT NULL AND locked_by <> 'on hold'
 ORDER BY locked_at, id LIMIT $2::int OFFSET $3::int

-- name: list_failed
SELECT {{failed_job_columns}} FROM failed_jobs
 WHERE ($1::text = '' OR queue = $1::text)
 ORDER BY id DESC LIMIT $2::int OFFSET $3::int

-- name: list_strand
SELECT {{delayed_job_columns}} FROM delayed_jobs
 WHERE strand = $1::text
 ORDER BY strand_order_override, id LIMIT $2::int OFFSET $3::int

-- name: list_tag
SELECT {{delayed_job_columns}} FROM delayed_jobs
 WHERE tag = $1::text
 ORDER BY id LIMIT $2::int OFFSET $3::int

-- name: job_counts
-- Live and failed jobs per key (QueueCount's and GroupCount's columns) over the jobs of the
-- selection $1..$4 (fragment job_selection); $5 the key: 'queue', 'tag' or 'strand'. Jobs
-- without the key (no strand) are left out.
WITH live AS (
  SELECT CASE $5::text WHEN 'tag' THEN tag WHEN 'strand' THEN strand ELSE queue END AS k,
    count(*) FILTER (WHERE locked_by IS NULL AND next_in_strand
                       AND run_at <= (now() AT TIME ZONE 'UTC')) AS queued,
    count(*) FILTER (WHERE locked_by IS NULL AND next_in_strand
                       AND run_at > (now() AT TIME ZONE 'UTC')) AS future,
    count(*) FILTER (WHERE locked_by IS NULL AND NOT next_in_strand) AS blocked,
    count(*) FILTER (WHERE locked_by <> 'on hold' AND locked_by NOT LIKE 'prefetch:%') AS running,
    count(*) FILTER (WHERE locked_by LIKE 'prefetch:%') AS prefetched,
    count(*) FILTER (WHERE locked_by = 'on hold') AS held
    FROM delayed_jobs WHERE {{job_selection}} GROUP BY 1),
 dead AS (
  SELECT CASE $5::text WHEN 'tag' THEN tag WHEN 'strand' THEN strand ELSE queue END AS k,
         count(*) AS failed
    FROM failed_jobs WHERE {{job_selection}} GROUP BY 1)
SELECT COALESCE(l.k, d.k) AS key, COALESCE(l.queued, 0) AS queued, COALESCE(l.future, 0) AS future,
       COALESCE(l.blocked, 0) AS blocked, COALESCE(l.running, 0) AS running,
       COALESCE(l.prefetched, 0) AS prefetched, COALESCE(l.held, 0) AS held,
       COALESCE(d.failed, 0) AS failed
  FROM live l FULL JOIN dead d ON l.k = d.k
 WHERE COALESCE(l.k, d.k) IS NOT NULL
 ORDER BY 1

-- name: has_runnable
SELECT EXISTS (SELECT 1 FROM delayed_jobs
                WHERE run_at <= (now() AT TIME ZONE 'UTC') AND locked_at IS NULL
                  AND next_in_strand = true AND priority BETWEEN $2::int AND $3::int
                  AND queue = $1::varchar) AS runnable
