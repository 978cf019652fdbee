-- New jobs.

-- name: insert
-- $1 priority, $2 handler, $3 queue, $4 run_at µs | NULL, $5 run_in µs | NULL, $6 tag,
-- $7 max_attempts, $8 strand, $9 source, $10 max_concurrent, $11 expires_at µs, $12 singleton,
-- $13 on_conflict ('use_earliest' | 'overwrite' | 'loose' | 'patient').
-- The strand lock is taken by the CTE before the row exists, i.e. before the BEFORE INSERT
-- trigger wants it and before the singleton lock: inst-jobs' prepended SELECT, in one round trip.
-- Plain and singleton jobs share the statement: a NULL singleton never meets the arbiter index.
-- inserted: false when a queued singleton twin was updated instead; no row when it was kept.
WITH strand_lock AS (
  SELECT count(*) FROM (SELECT pg_advisory_xact_lock(half_md5_as_bigint($8::varchar))
                         WHERE $8::varchar IS NOT NULL) l)
INSERT INTO delayed_jobs AS dj (priority, attempts, handler, queue, run_at, created_at,
  updated_at, tag, max_attempts, strand, source, max_concurrent, expires_at, singleton)
SELECT $1::int, 0, $2::text, $3::varchar,
       COALESCE('epoch'::timestamp + $4::int8 * interval '1 microsecond',
                (now() AT TIME ZONE 'UTC') + COALESCE($5::int8, 0) * interval '1 microsecond'),
       (now() AT TIME ZONE 'UTC'), (now() AT TIME ZONE 'UTC'),
       $6::varchar, $7::int, $8::varchar, $9::varchar, $10::int,
       'epoch'::timestamp + $11::int8 * interval '1 microsecond', $12::varchar
  FROM strand_lock
ON CONFLICT (singleton) WHERE singleton IS NOT NULL AND locked_by IS NULL DO UPDATE
  SET run_at = EXCLUDED.run_at,
      handler = CASE WHEN $13::text = 'overwrite' THEN EXCLUDED.handler ELSE dj.handler END
  WHERE $13::text = 'overwrite' OR ($13::text = 'use_earliest' AND EXCLUDED.run_at < dj.run_at)
RETURNING dj.id, (dj.xmax = 0) AS inserted

-- name: copy_jobs
-- Store::enqueueBulk's plain jobs, in COPY text format.
COPY delayed_jobs (priority, attempts, handler, queue, run_at, created_at, updated_at, tag,
                   max_attempts, source, expires_at) FROM STDIN

-- name: insert_copies
-- `count` copies of one plain job, ids returned (COPY would not return them).
-- $1 priority, $2 handler, $3 queue, $4 run_at µs | NULL, $5 run_in µs | NULL, $6 tag,
-- $7 max_attempts, $8 source, $9 expires_at µs, $10 count. Plain jobs only: no strand lock, no
-- singleton conflict, the insert trigger does not fire.
INSERT INTO delayed_jobs (priority, attempts, handler, queue, run_at, created_at, updated_at,
  tag, max_attempts, source, expires_at)
SELECT $1::int, 0, $2::text, $3::varchar,
       COALESCE('epoch'::timestamp + $4::int8 * interval '1 microsecond',
                (now() AT TIME ZONE 'UTC') + COALESCE($5::int8, 0) * interval '1 microsecond'),
       (now() AT TIME ZONE 'UTC'), (now() AT TIME ZONE 'UTC'),
       $6::varchar, $7::int, $8::varchar,
       'epoch'::timestamp + $9::int8 * interval '1 microsecond'
  FROM generate_series(1, $10::int)
RETURNING id
