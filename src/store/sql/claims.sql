-- The hot path: claims, results, lock transfers (docs/store.md).

-- name: reserve
-- $1 worker names (row rn goes to $1[rn]), $2 queue, $3/$4 priority range, $5 limit = names +
-- prefetch, $6 forced latency µs, $7 prefetch owner (NULL without prefetch; then the LIMIT keeps
-- every row inside $1 and no row can end up with locked_at set and locked_by NULL).
-- MATERIALIZED keeps the planner from pushing the join into the locked subquery and escaping
-- the LIMIT (the reason inst-jobs uses a CTE). row_number is ordered explicitly so the mapping
-- does not rely on the subquery's output order.
WITH limited_jobs AS MATERIALIZED (
  SELECT id AS job_id, row_number() OVER (ORDER BY priority, run_at, id) AS rn FROM (
    SELECT id, priority, run_at FROM delayed_jobs
     WHERE {{reservable}}
     ORDER BY priority, run_at, id LIMIT $5::int FOR UPDATE SKIP LOCKED) candidates)
{{assign_locks}}

-- name: reserve_singletons
-- The written-lock claim for singletons only, beside the held-lock claim of everything else:
-- reserve with one more predicate. A statement of its own rather than a parameter, so that the
-- planner sees `singleton IS NOT NULL` and may use the partial singleton indexes.
WITH limited_jobs AS MATERIALIZED (
  SELECT id AS job_id, row_number() OVER (ORDER BY priority, run_at, id) AS rn FROM (
    SELECT id, priority, run_at FROM delayed_jobs
     WHERE {{reservable}} AND singleton IS NOT NULL
     ORDER BY priority, run_at, id LIMIT $5::int FOR UPDATE SKIP LOCKED) candidates)
{{assign_locks}}

-- fragment: reservable
-- reserve's candidates: runnable ($6 forced latency µs), unlocked strand heads of the queue $2
-- within the priority range $3/$4.
run_at <= (now() AT TIME ZONE 'UTC') - $6::int8 * interval '1 microsecond'
       AND locked_at IS NULL AND next_in_strand = true
       AND priority BETWEEN $3::int AND $4::int AND queue = $2::varchar

-- fragment: assign_locks
-- reserve's write: candidate rn goes to worker $1[rn], the rest to the prefetch owner $7.
UPDATE delayed_jobs SET locked_by = COALESCE(($1::text[])[lj.rn], $7::varchar),
                        locked_at = (now() AT TIME ZONE 'UTC')
  FROM limited_jobs lj WHERE lj.job_id = delayed_jobs.id
RETURNING lj.rn, {{delayed_job_columns}}

-- name: claim_held
-- The held-lock claim (docs/store.md): the claim is the row lock of the open transaction.
-- Nothing is written, so other claimers (hostq servers, inst-jobs' own workers) skip these rows
-- until COMMIT while they still read locked_by IS NULL. Singletons are left to the written-lock
-- claim: their unique indexes are keyed on locked_by. $1 queue, $2/$3 priority range, $4 limit,
-- $5 forced latency µs. Results in binary: store::ClaimedRowReader.
SELECT {{claimed_job_columns}} FROM delayed_jobs
 WHERE run_at <= (now() AT TIME ZONE 'UTC') - $5::int8 * interval '1 microsecond'
   AND locked_at IS NULL AND next_in_strand = true AND singleton IS NULL
   AND priority BETWEEN $2::int AND $3::int AND queue = $1::varchar
 ORDER BY priority, run_at, id LIMIT $4::int FOR UPDATE SKIP LOCKED

-- name: claim_held_after
-- claim_held for rows after ($6 priority, $7 run_at µs, $8 id) in claim order only: every row
-- before that key that claim_held would find is held by this server's open batches, and walking
-- past them (each a failed row lock under SKIP LOCKED) was most of a claim's cost in a burn-down
-- (docs/server.md, "Claims start past the open batches"). The row comparison is an index bound.
SELECT {{claimed_job_columns}} FROM delayed_jobs
 WHERE run_at <= (now() AT TIME ZONE 'UTC') - $5::int8 * interval '1 microsecond'
   AND locked_at IS NULL AND next_in_strand = true AND singleton IS NULL
   AND priority BETWEEN $2::int AND $3::int AND queue = $1::varchar
   AND (priority, run_at, id) > ($6::int, 'epoch'::timestamp + $7::int8 * interval '1 microsecond', $8::int8)
 ORDER BY priority, run_at, id LIMIT $4::int FOR UPDATE SKIP LOCKED

-- name: complete_held
-- Completes claimed rows. The row lock makes the guard redundant while the transaction lives;
-- it keeps a retry on a new connection (after the batch was lost) from deleting a row somebody
-- else has since written a lock on.
DELETE FROM delayed_jobs WHERE id = ANY($1::int8[]) AND locked_by IS NULL RETURNING id

-- name: singleton_lock
-- Singleton repair (inst-jobs §3.1), first step: the reservation hit
-- index_delayed_jobs_on_singleton_running, i.e. a queued twin of a running singleton was
-- next_in_strand. singleton_repair runs under this lock, in a later statement, so that its
-- snapshot sees everything the lock protects.
SELECT pg_advisory_xact_lock(half_md5_as_bigint(CONCAT('singleton:', $1::text)))

-- name: singleton_repair
-- Demotes the queued twin if exactly one twin is running.
WITH running AS (
  SELECT id FROM delayed_jobs WHERE singleton = $1::varchar AND locked_by IS NOT NULL
     AND locked_by <> 'on hold' FOR UPDATE),
 fixed AS (
  UPDATE delayed_jobs SET next_in_strand = false
   WHERE singleton = $1::varchar AND next_in_strand AND locked_by IS NULL
     AND (SELECT count(*) FROM running) = 1 RETURNING id)
SELECT (SELECT count(*) FROM running) AS running, (SELECT count(*) FROM fixed) AS fixed

-- name: transfer
-- $1 ids, $2 expected locked_by, $3 new locked_by. The CAS on locked_by is written IS NOT
-- DISTINCT FROM (equal here: the expected value is never NULL) because a strict `=` lets the
-- planner prove `locked_by IS NOT NULL` and scan the partial index on locked_by, which holds
-- every reserved row of the host: measured 27 ms instead of 0.4 ms for 100 rows while 2,000
-- rows were locked. With it, each row is one primary-key probe.
UPDATE delayed_jobs d SET locked_by = x.to_by, locked_at = (now() AT TIME ZONE 'UTC')
  FROM unnest($1::int8[], $2::text[], $3::text[]) AS x(id, from_by, to_by)
 WHERE d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.from_by RETURNING d.id

-- name: complete
-- Success = delete; the AFTER DELETE trigger promotes the strand / singleton successor.
DELETE FROM delayed_jobs d USING unnest($1::int8[], $2::text[]) AS x(id, by)
 WHERE d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.by RETURNING d.id

-- name: unlock
UPDATE delayed_jobs d SET locked_by = NULL, locked_at = NULL
  FROM unnest($1::int8[], $2::text[]) AS x(id, by)
 WHERE d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.by RETURNING d.id

-- name: lock_states
-- After an in-doubt CAS batch: where each job stands now (absent ids are gone).
SELECT id, locked_by FROM delayed_jobs WHERE id = ANY($1::int8[])

-- name: fail
-- $1 ids, $2 expected locked_by, $3 errors, $4 run_at µs (NULL = backoff), $5 count the
-- attempt, $6 permanent, $7 default max_attempts, $8 keep failed jobs. Returns each failure's
-- decision (permanent, new_attempts, run_at_us: the next run when rescheduled): the only place
-- it is made; the worker's hooks follow it.
-- One statement: the CAS (FOR UPDATE re-checks locked_by against concurrent writers), the copy
-- to failed_jobs, the delete and the reschedule see one snapshot and commit together.
-- failed_jobs has no triggers, so no strand lock is taken for it (inst-jobs §7.9 #32).
WITH input AS (
  SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::bool[])
    AS x(id, locked_by, error, run_at_us, count_attempt, permanent)),
 target AS (
  SELECT d.id, x.error, x.run_at_us,
         d.attempts + CASE WHEN x.count_attempt THEN 1 ELSE 0 END AS new_attempts,
         (x.permanent
          OR d.attempts + CASE WHEN x.count_attempt THEN 1 ELSE 0 END
               >= COALESCE(d.max_attempts, $7::int)
          OR (d.expires_at IS NOT NULL AND d.expires_at <= (now() AT TIME ZONE 'UTC'))) AS permanent
    FROM delayed_jobs d JOIN input x ON d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.locked_by
     FOR UPDATE OF d),
 moved AS (
  INSERT INTO failed_jobs (priority, attempts, handler, last_error, queue, run_at, locked_at,
    failed_at, locked_by, created_at, updated_at, tag, max_attempts, strand, original_job_id,
    source, expires_at, strand_order_override, singleton)
  SELECT d.priority, t.new_attempts, d.handler, t.error, d.queue, d.run_at, d.locked_at,
         (now() AT TIME ZONE 'UTC'), d.locked_by, d.created_at, (now() AT TIME ZONE 'UTC'),
         d.tag, d.max_attempts, d.strand, d.id, d.source, d.expires_at,
         d.strand_order_override, d.singleton
    FROM target t JOIN delayed_jobs d ON d.id = t.id WHERE t.permanent AND $8::bool
  RETURNING original_job_id),
 removed AS (
  DELETE FROM delayed_jobs d USING target t WHERE d.id = t.id AND t.permanent RETURNING d.id),
 rescheduled AS (
  UPDATE delayed_jobs d SET attempts = t.new_attempts, last_error = t.error,
         run_at = COALESCE('epoch'::timestamp + t.run_at_us::int8 * interval '1 microsecond',
                           (now() AT TIME ZONE 'UTC')
                             + (power(t.new_attempts, 4) + 5) * interval '1 second'),
         locked_by = NULL, locked_at = NULL, updated_at = (now() AT TIME ZONE 'UTC')
    FROM target t WHERE d.id = t.id AND NOT t.permanent RETURNING d.id, d.run_at)
SELECT t.id, t.permanent, t.new_attempts, (extract(epoch FROM r.run_at) * 1000000)::int8 AS run_at_us
  FROM target t LEFT JOIN rescheduled r ON r.id = t.id
