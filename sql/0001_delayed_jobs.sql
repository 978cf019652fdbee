-- hostq schema v1: inst-jobs' delayed_jobs / failed_jobs, as they stand after all of its migrations
-- (docs/store.md). Every object keeps inst-jobs' name, type and semantics so a database can be
-- shared with Ruby inst-jobs; everything is IF NOT EXISTS / OR REPLACE so running this over an
-- existing inst-jobs schema only replaces functions with equivalent ones.

-- First 8 bytes of md5(text), big-endian, as a signed bigint: the key of every advisory lock
-- (strands, 'singleton:'||name, maintenance task names). Must equal inst-jobs' plpgsql version
-- bit for bit or the two implementations would not exclude each other; the bit-string cast is
-- the same two's-complement value, computed without plpgsql, and IMMUTABLE so it can be inlined.
CREATE OR REPLACE FUNCTION half_md5_as_bigint(strand varchar) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $fn$ SELECT ('x' || substr(md5(strand), 1, 16))::bit(64)::bigint $fn$;

CREATE TABLE IF NOT EXISTS delayed_jobs (
  id serial PRIMARY KEY,
  priority integer DEFAULT 0,
  attempts integer DEFAULT 0,
  handler text,
  last_error text,
  queue varchar(255) NOT NULL,
  run_at timestamp without time zone NOT NULL,
  locked_at timestamp without time zone,
  failed_at timestamp without time zone,
  locked_by varchar(255),
  created_at timestamp without time zone,
  updated_at timestamp without time zone,
  tag varchar(255),
  max_attempts integer,
  strand varchar(255),
  next_in_strand boolean NOT NULL DEFAULT true,
  source varchar(255),
  max_concurrent integer NOT NULL DEFAULT 1,
  expires_at timestamp without time zone,
  strand_order_override integer NOT NULL DEFAULT 0,
  singleton varchar
);

-- The reservation index: exactly the candidate filter of the reserve statement.
CREATE INDEX IF NOT EXISTS get_delayed_jobs_index ON delayed_jobs (queue, priority, run_at, id)
  WHERE locked_at IS NULL AND next_in_strand;
CREATE INDEX IF NOT EXISTS index_delayed_jobs_on_locked_by ON delayed_jobs (locked_by)
  WHERE locked_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS index_delayed_jobs_on_run_at_and_tag ON delayed_jobs (run_at, tag);
CREATE INDEX IF NOT EXISTS index_delayed_jobs_on_tag ON delayed_jobs (tag);
CREATE INDEX IF NOT EXISTS index_delayed_jobs_on_strand ON delayed_jobs (strand, id);
CREATE INDEX IF NOT EXISTS next_in_strand_index ON delayed_jobs (strand, strand_order_override, id)
  WHERE strand IS NOT NULL;
CREATE INDEX IF NOT EXISTS n_strand_index ON delayed_jobs (strand, next_in_strand, id)
  WHERE strand IS NOT NULL;
-- At most one queued (or held) and at most one running job per singleton.
CREATE UNIQUE INDEX IF NOT EXISTS index_delayed_jobs_on_singleton_not_running ON delayed_jobs (singleton)
  WHERE singleton IS NOT NULL AND (locked_by IS NULL OR locked_by = 'on hold');
CREATE UNIQUE INDEX IF NOT EXISTS index_delayed_jobs_on_singleton_running ON delayed_jobs (singleton)
  WHERE singleton IS NOT NULL AND locked_by IS NOT NULL AND locked_by <> 'on hold';

CREATE TABLE IF NOT EXISTS failed_jobs (
  id serial PRIMARY KEY,
  priority integer DEFAULT 0,
  attempts integer DEFAULT 0,
  handler varchar(512000),
  last_error text,
  queue varchar(255),
  run_at timestamp without time zone,
  locked_at timestamp without time zone,
  failed_at timestamp without time zone,
  locked_by varchar(255),
  created_at timestamp without time zone,
  updated_at timestamp without time zone,
  tag varchar(255),
  max_attempts integer,
  strand varchar(255),
  original_job_id bigint,
  source varchar(255),
  expires_at timestamp without time zone,
  strand_order_override integer NOT NULL DEFAULT 0,
  singleton varchar,
  requeued_job_id bigint
);
CREATE INDEX IF NOT EXISTS index_failed_jobs_on_failed_at ON failed_jobs (failed_at);
CREATE INDEX IF NOT EXISTS index_failed_jobs_on_strand ON failed_jobs (strand) WHERE strand IS NOT NULL;
CREATE INDEX IF NOT EXISTS index_failed_jobs_on_singleton ON failed_jobs (singleton) WHERE singleton IS NOT NULL;
CREATE INDEX IF NOT EXISTS index_failed_jobs_on_tag ON failed_jobs (tag);

-- BEFORE INSERT (strand or singleton): decide next_in_strand for the new row. The advisory locks
-- serialise this count against concurrent inserts and the delete trigger of the same strand /
-- singleton; enqueue takes the strand lock itself first, so the order is always strand, then
-- singleton, and two enqueuers cannot deadlock.
CREATE OR REPLACE FUNCTION delayed_jobs_before_insert_row_tr_fn() RETURNS trigger AS $fn$
BEGIN
  IF NEW.strand IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(half_md5_as_bigint(NEW.strand));
    IF (SELECT count(*) FROM (
          SELECT 1 FROM delayed_jobs
           WHERE strand = NEW.strand AND next_in_strand = true
           LIMIT NEW.max_concurrent) AS window_rows) = NEW.max_concurrent THEN
      NEW.next_in_strand := false;
    END IF;
  END IF;
  IF NEW.singleton IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(half_md5_as_bigint(CONCAT('singleton:', NEW.singleton)));
    -- The redundant-looking OR lets the planner use the two partial singleton indexes instead
    -- of a sequential scan: any existing row of the singleton, running or not, blocks the new one.
    PERFORM 1 FROM delayed_jobs
     WHERE singleton = NEW.singleton
       AND (locked_by IS NULL OR locked_by = 'on hold' OR locked_by <> 'on hold');
    IF FOUND THEN
      NEW.next_in_strand := false;
    END IF;
  END IF;
  RETURN NEW;
END;
$fn$ LANGUAGE plpgsql;

-- AFTER DELETE of a job that was next in its strand / singleton: promote the successor(s).
-- Part A (strand): exact recount every (max_concurrent*4)-th id, which heals a changed
-- max_concurrent; otherwise promote one candidate (SKIP LOCKED for n_strands, whose order need
-- not be strict). A candidate whose singleton has another row is skipped: it must wait for that
-- twin. Part B (singleton): a transition between strands (or to/from none) only starts the next
-- singleton if its target strand is otherwise empty; otherwise a later completion in that strand
-- picks it up through Part A.
CREATE OR REPLACE FUNCTION delayed_jobs_after_delete_row_tr_fn() RETURNS trigger AS $fn$
DECLARE
  next_strand varchar;
  running_count integer;
  should_lock boolean;
  should_be_precise boolean;
  update_query varchar;
  skip_locked varchar;
  transition boolean;
BEGIN
  IF OLD.strand IS NOT NULL THEN
    should_lock := true;
    should_be_precise := OLD.id % (OLD.max_concurrent * 4) = 0;

    IF NOT should_be_precise AND OLD.max_concurrent > 16 THEN
      running_count := (SELECT count(*) FROM (
        SELECT 1 FROM delayed_jobs
         WHERE strand = OLD.strand AND next_in_strand = true
         LIMIT OLD.max_concurrent) AS window_rows);
      should_lock := running_count < OLD.max_concurrent;
    END IF;

    IF should_lock THEN
      PERFORM pg_advisory_xact_lock(half_md5_as_bigint(OLD.strand));
    END IF;

    update_query := 'UPDATE delayed_jobs SET next_in_strand = true WHERE id IN (
      SELECT id FROM delayed_jobs j2
       WHERE next_in_strand = false
         AND j2.strand = $1.strand
         AND (j2.singleton IS NULL OR NOT EXISTS (
               SELECT 1 FROM delayed_jobs j3
                WHERE j3.singleton = j2.singleton AND j3.id <> j2.id
                  AND (j3.locked_by IS NULL OR j3.locked_by = ''on hold'' OR j3.locked_by <> ''on hold'')))
       ORDER BY j2.strand_order_override ASC, j2.id ASC
       LIMIT ';

    IF should_be_precise THEN
      running_count := (SELECT count(*) FROM (
        SELECT 1 FROM delayed_jobs
         WHERE strand = OLD.strand AND next_in_strand = true
         LIMIT OLD.max_concurrent) AS window_rows);
      IF running_count < OLD.max_concurrent THEN
        update_query := update_query || '($1.max_concurrent - $2)';
      ELSE
        -- the window is already full; Part B is skipped too, as in inst-jobs
        RETURN OLD;
      END IF;
    ELSE
      update_query := update_query || '1';
      IF OLD.max_concurrent > 1 THEN
        skip_locked := ' SKIP LOCKED';
      END IF;
    END IF;

    update_query := update_query || ' FOR UPDATE' || COALESCE(skip_locked, '') || ')';
    EXECUTE update_query USING OLD, running_count;
  END IF;

  IF OLD.singleton IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(half_md5_as_bigint(CONCAT('singleton:', OLD.singleton)));

    transition := EXISTS (
      SELECT 1 FROM delayed_jobs AS j1
       WHERE j1.singleton = OLD.singleton AND j1.strand IS DISTINCT FROM OLD.strand
         AND locked_by IS NULL);

    IF transition THEN
      next_strand := (
        SELECT j1.strand FROM delayed_jobs AS j1
         WHERE j1.singleton = OLD.singleton AND j1.strand IS DISTINCT FROM OLD.strand
           AND locked_by IS NULL AND j1.strand IS NOT NULL
         LIMIT 1);
      IF next_strand IS NOT NULL THEN
        -- n_strand limits of the target strand: whoever holds its lock promotes it instead
        IF NOT pg_try_advisory_xact_lock(half_md5_as_bigint(next_strand)) THEN
          RETURN OLD;
        END IF;
      END IF;
    ELSIF OLD.strand IS NOT NULL THEN
      -- same strand: Part A already promoted the successor
      RETURN OLD;
    END IF;

    UPDATE delayed_jobs SET next_in_strand = true WHERE id IN (
      SELECT id FROM delayed_jobs j2
       WHERE next_in_strand = false
         AND j2.singleton = OLD.singleton
         AND j2.locked_by IS NULL
         AND (j2.strand IS NULL OR NOT EXISTS (
               SELECT 1 FROM delayed_jobs j3 WHERE j3.strand = j2.strand AND j3.id <> j2.id))
       FOR UPDATE);
  END IF;
  RETURN OLD;
END;
$fn$ LANGUAGE plpgsql;

-- BEFORE UPDATE that unlocks a running/prefetched singleton: the unlocked row becomes the queued
-- one again, so a queued duplicate enqueued meanwhile would violate the not-running unique index;
-- inst-jobs resolves it by deleting the duplicate (and with it any :overwrite applied to it).
CREATE OR REPLACE FUNCTION delayed_jobs_before_unlock_delete_conflicting_singletons_row_fn() RETURNS trigger AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM delayed_jobs j2 WHERE j2.singleton = OLD.singleton) THEN
    DELETE FROM delayed_jobs WHERE id <> OLD.id AND singleton = OLD.singleton AND locked_by IS NULL;
  END IF;
  RETURN NEW;
END;
$fn$ LANGUAGE plpgsql;

CREATE OR REPLACE TRIGGER delayed_jobs_before_insert_row_tr
  BEFORE INSERT ON delayed_jobs FOR EACH ROW
  WHEN (NEW.strand IS NOT NULL OR NEW.singleton IS NOT NULL)
  EXECUTE PROCEDURE delayed_jobs_before_insert_row_tr_fn();
CREATE OR REPLACE TRIGGER delayed_jobs_after_delete_row_tr
  AFTER DELETE ON delayed_jobs FOR EACH ROW
  WHEN ((OLD.strand IS NOT NULL OR OLD.singleton IS NOT NULL) AND OLD.next_in_strand = true)
  EXECUTE PROCEDURE delayed_jobs_after_delete_row_tr_fn();
CREATE OR REPLACE TRIGGER delayed_jobs_before_unlock_delete_conflicting_singletons_row_tr
  BEFORE UPDATE ON delayed_jobs FOR EACH ROW
  WHEN (OLD.singleton IS NOT NULL AND OLD.singleton = NEW.singleton
        AND OLD.locked_by IS NOT NULL AND NEW.locked_by IS NULL)
  EXECUTE PROCEDURE delayed_jobs_before_unlock_delete_conflicting_singletons_row_fn();
