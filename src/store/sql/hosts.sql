-- The host registry and the reaper of dead hosts (maintenance_store.hpp).

-- name: host_mark
-- Taken before the beat, in its transaction: the row lock orders a beat after a reaper's mark.
SELECT declared_dead_at IS NOT NULL AS declared_dead FROM hostq_hosts
 WHERE hostname = $1::varchar FOR UPDATE

-- name: host_beat
INSERT INTO hostq_hosts AS h (hostname, pid, heartbeat_at, host_timeout_ms)
VALUES ($1::varchar, $2::int, (now() AT TIME ZONE 'UTC'), $3::int)
ON CONFLICT (hostname) DO UPDATE
  SET pid = EXCLUDED.pid, heartbeat_at = EXCLUDED.heartbeat_at,
      host_timeout_ms = EXCLUDED.host_timeout_ms, declared_dead_at = NULL, reaped_at = NULL

-- name: live_hosts
-- Hosts whose heartbeat is recent (within their promise, and at least 15 s: a host that signed off
-- or never times out promises 0) and that nobody declared dead.
SELECT count(*) AS live FROM hostq_hosts
 WHERE declared_dead_at IS NULL
   AND heartbeat_at > (now() AT TIME ZONE 'UTC') - GREATEST(host_timeout_ms, 15000) * interval '1 millisecond'

-- name: reaper_try_lock
-- Advisory locks are database-wide; a farm is one jobs table, i.e. one schema.
SELECT pg_try_advisory_lock(half_md5_as_bigint('hostq:reap_dead_hosts:' || current_schema())) AS got

-- name: reaper_unlock
SELECT pg_advisory_unlock(half_md5_as_bigint('hostq:reap_dead_hosts:' || current_schema()))

-- name: declare_dead
-- $1 this host. The second branch reads the statement's snapshot, in which the hosts the first
-- one marks were not marked yet: no host comes out twice.
WITH marked AS (
  UPDATE hostq_hosts SET declared_dead_at = (now() AT TIME ZONE 'UTC')
   WHERE hostname <> $1::varchar AND declared_dead_at IS NULL AND host_timeout_ms > 0
     AND heartbeat_at < (now() AT TIME ZONE 'UTC') - host_timeout_ms * interval '1 millisecond'
  RETURNING hostname, declared_dead_at, heartbeat_at)
SELECT hostname, (extract(epoch FROM declared_dead_at) * 1000000)::int8 AS declared_dead_us,
       (extract(epoch FROM heartbeat_at) * 1000000)::int8 AS heartbeat_us
  FROM marked
UNION ALL
SELECT hostname, (extract(epoch FROM declared_dead_at) * 1000000)::int8,
       (extract(epoch FROM heartbeat_at) * 1000000)::int8
  FROM hostq_hosts
 WHERE declared_dead_at IS NOT NULL AND reaped_at IS NULL AND hostname <> $1::varchar

-- name: locked_by_host
-- $1 host, $2 when it was declared dead (µs). `HOST:DIGITS` (a worker of the host) and
-- `prefetch:HOST`, locked before the host was declared dead: a lock taken later is a live
-- server's (the host came back). `locked_by IS NOT NULL` lets the planner use the partial index
-- on locked_by, which holds only locked rows.
SELECT id, locked_by FROM delayed_jobs
 WHERE locked_by IS NOT NULL AND locked_at < 'epoch'::timestamp + $2::int8 * interval '1 microsecond'
   AND (locked_by = 'prefetch:' || $1::text
        OR (left(locked_by, length($1::text) + 1) = $1::text || ':'
            AND substr(locked_by, length($1::text) + 2) ~ '^[0-9]+$'))
 ORDER BY id

-- name: mark_reaped
-- $1 host, $2 when it was declared dead (µs); hosts reaped a week ago are forgotten.
WITH forgotten AS (
  DELETE FROM hostq_hosts WHERE reaped_at < (now() AT TIME ZONE 'UTC') - interval '7 days')
UPDATE hostq_hosts SET reaped_at = (now() AT TIME ZONE 'UTC')
 WHERE hostname = $1::varchar
   AND declared_dead_at = 'epoch'::timestamp + $2::int8 * interval '1 microsecond'

-- name: host_sign_off
-- A host that leaves with no job locked is not declared dead later.
UPDATE hostq_hosts SET host_timeout_ms = 0
 WHERE hostname = $1::varchar AND pid = $2::int
   AND NOT EXISTS (SELECT 1 FROM delayed_jobs WHERE locked_by IS NOT NULL
                    AND (locked_by = 'prefetch:' || $1::text
                         OR left(locked_by, length($1::text) + 1) = $1::text || ':'))

-- name: missing_singletons
-- $1 singleton names: those with no job queued or held, with the database's now.
SELECT (extract(epoch FROM (now() AT TIME ZONE 'UTC')) * 1000000)::int8 AS now_us, s AS singleton
  FROM unnest($1::text[]) AS s
 WHERE NOT EXISTS (SELECT 1 FROM delayed_jobs d WHERE d.singleton = s
                    AND (d.locked_by IS NULL OR d.locked_by = 'on hold'))
