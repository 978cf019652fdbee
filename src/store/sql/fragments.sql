-- Pieces that several statements share, pasted in where a statement says {{name}} when the
-- catalog is built: every statement the server sees is one fixed text. A fragment is never
-- prepared by itself.
--
-- Conventions of every file here: parameters are cast where used (statements are prepared
-- untyped); timestamps travel as int8 microseconds since the Unix epoch (UTC) both ways, under
-- a name ending in _us; "now" is (now() AT TIME ZONE 'UTC'), the transaction's start on the
-- database clock as inst-jobs stores it (timestamp without time zone, UTC), so every row one
-- statement touches gets the same value.

-- fragment: job_columns
-- The columns delayed_jobs and failed_jobs share, under the names job_row.hpp decodes.
id, priority, attempts, tag, handler, last_error, queue,
(extract(epoch FROM run_at) * 1000000)::int8 AS run_at_us,
(extract(epoch FROM locked_at) * 1000000)::int8 AS locked_at_us,
(extract(epoch FROM failed_at) * 1000000)::int8 AS failed_at_us,
locked_by,
(extract(epoch FROM created_at) * 1000000)::int8 AS created_at_us,
(extract(epoch FROM updated_at) * 1000000)::int8 AS updated_at_us,
max_attempts, strand, source,
(extract(epoch FROM expires_at) * 1000000)::int8 AS expires_at_us,
strand_order_override, singleton

-- fragment: claimed_job_columns
-- What a handler is given of a claimed job (protocol::JobAssigned) and no more, for the claim
-- path decodes a few thousand rows a second: fetched in binary (store::ClaimedRowReader), the
-- timestamps as they are stored (int8 µs since 2000-01-01), which also spares the database the
-- numeric arithmetic of the _us columns.
id, priority, attempts, tag, handler, queue, run_at, created_at, max_attempts, strand, expires_at,
singleton

-- fragment: delayed_job_columns
{{job_columns}}, next_in_strand, max_concurrent

-- fragment: failed_job_columns
-- A failed job is no strand's head and takes no slot of one.
{{job_columns}}, true AS next_in_strand, 1 AS max_concurrent, original_job_id, requeued_job_id

-- fragment: job_selection
-- The operator's selection ($1 ids, $2 tag, $3 strand, $4 queue): a NULL part matches every job.
-- Each admin statement runs once per connection, so PostgreSQL plans it with the values (a
-- custom plan) and the NULL parts fold away; the indexes on tag, strand and queue are used.
($1::int8[] IS NULL OR id = ANY($1::int8[])) AND ($2::text IS NULL OR tag = $2::text)
AND ($3::text IS NULL OR strand = $3::text) AND ($4::text IS NULL OR queue = $4::text)

-- fragment: job_state
-- The state `hostq jobs` shows (admin_store.hpp's JobState), in the order of its tests.
CASE WHEN locked_by = 'on hold' THEN 'held' WHEN locked_by LIKE 'prefetch:%' THEN 'prefetched'
     WHEN locked_by IS NOT NULL THEN 'running' WHEN NOT next_in_strand THEN 'blocked'
     WHEN run_at > (now() AT TIME ZONE 'UTC') THEN 'future' ELSE 'queued' END
