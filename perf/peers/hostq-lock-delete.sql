-- The database's own ceiling for hostq's work on hostq's (inst-jobs') schema, without the server
-- or workers: lock a batch with the same shape as hostq's reservation statement (same index,
-- SKIP LOCKED, locked_by/locked_at set), then complete the batch with one DELETE by id, as the
-- result writer does. :batch rows per transaction pair.
WITH c AS MATERIALIZED (
  SELECT id FROM delayed_jobs
   WHERE run_at <= now() AND locked_at IS NULL AND next_in_strand = true
     AND priority BETWEEN 0 AND 1000000 AND queue = 'queue'
   ORDER BY priority, run_at, id
   LIMIT :batch FOR UPDATE SKIP LOCKED),
 u AS (UPDATE delayed_jobs j SET locked_by = 'pgbench:' || :client_id, locked_at = now()
         FROM c WHERE j.id = c.id RETURNING j.id)
SELECT array_agg(id) AS job_ids FROM u \gset
DELETE FROM delayed_jobs WHERE id = ANY (:job_ids::bigint[]);
