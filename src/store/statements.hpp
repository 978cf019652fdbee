#pragma once
// Every statement the store prepares. Conventions: parameters are cast where used (they are
// prepared untyped), timestamps travel as int8 microseconds since the Unix epoch (UTC) both
// ways, and every "now" is the database's transaction timestamp in UTC.
#include <string>

#include "store/pg_connection.hpp"

namespace hostq::store::sql {

/// The database clock as inst-jobs stores it (`timestamp without time zone`, UTC). now() is the
/// transaction start, so every row a statement touches gets the same value.
inline const std::string kNow = "(now() AT TIME ZONE 'UTC')";

inline std::string ts(const std::string& microsExpr) {
  return "('epoch'::timestamp + (" + microsExpr + ")::int8 * interval '1 microsecond')";
}
inline std::string us(const std::string& col) {
  return "(extract(epoch FROM " + col + ") * 1000000)::int8";
}

/// Column order understood by parseJob(); `p` is the table alias with its dot.
inline std::string jobColumns(const std::string& p, bool failed = false) {
  std::string c = p + "id, " + p + "priority, " + p + "attempts, " + p + "tag, " + p + "handler, " +
                  p + "last_error, " + p + "queue, " + us(p + "run_at") + ", " + us(p + "locked_at") +
                  ", " + us(p + "failed_at") + ", " + p + "locked_by, " + us(p + "created_at") + ", " +
                  us(p + "updated_at") + ", " + p + "max_attempts, " + p + "strand, ";
  c += failed ? "true, " : p + "next_in_strand, ";
  c += p + "source, ";
  c += failed ? "1, " : p + "max_concurrent, ";
  c += us(p + "expires_at") + ", " + p + "strand_order_override, " + p + "singleton";
  if (failed) c += ", " + p + "original_job_id, " + p + "requeued_job_id";
  return c;
}
inline constexpr int kJobColumnCount = 21;

// --- enqueue ------------------------------------------------------------------------------------
// $1 priority, $2 handler, $3 queue, $4 run_at µs | NULL, $5 run_in µs | NULL, $6 tag,
// $7 max_attempts, $8 strand, $9 source, $10 max_concurrent, $11 expires_at µs, $12 singleton,
// $13 on_conflict ('use_earliest' | 'overwrite' | 'loose' | 'patient').
//
// The strand lock is taken by the CTE before the row exists, i.e. before the BEFORE INSERT
// trigger wants it and before the singleton lock: inst-jobs' prepended SELECT, in one round trip.
// Plain and singleton jobs share the statement: a NULL singleton never meets the arbiter index.
inline const Statement kInsert{
    "hostq_insert",
    "WITH strand_lock AS ("
    "  SELECT count(*) FROM (SELECT pg_advisory_xact_lock(half_md5_as_bigint($8::varchar))"
    "                         WHERE $8::varchar IS NOT NULL) l) "
    "INSERT INTO delayed_jobs AS dj (priority, attempts, handler, queue, run_at, created_at,"
    "  updated_at, tag, max_attempts, strand, source, max_concurrent, expires_at, singleton) "
    "SELECT $1::int, 0, $2::text, $3::varchar, COALESCE(" + ts("$4") + ", " + kNow +
    "   + COALESCE($5::int8, 0) * interval '1 microsecond'), " + kNow + ", " + kNow +
    "   , $6::varchar, $7::int, $8::varchar, $9::varchar, $10::int, " + ts("$11") + ", $12::varchar"
    "  FROM strand_lock "
    "ON CONFLICT (singleton) WHERE singleton IS NOT NULL AND locked_by IS NULL DO UPDATE"
    "  SET run_at = EXCLUDED.run_at,"
    "      handler = CASE WHEN $13::text = 'overwrite' THEN EXCLUDED.handler ELSE dj.handler END"
    "  WHERE $13::text = 'overwrite' OR ($13::text = 'use_earliest' AND EXCLUDED.run_at < dj.run_at) "
    "RETURNING dj.id, (dj.xmax = 0)"};

inline const Statement kNowMicros{"hostq_now", "SELECT " + us(kNow)};

inline const std::string kCopyJobs =
    "COPY delayed_jobs (priority, attempts, handler, queue, run_at, created_at, updated_at, tag,"
    " max_attempts, source, expires_at) FROM STDIN";

// --- the hot path -------------------------------------------------------------------------------
// $1 worker names (row i goes to $1[i]), $2 queue, $3/$4 priority range, $5 limit = names +
// prefetch, $6 forced latency µs, $7 prefetch owner (NULL without prefetch; then the LIMIT keeps
// every row inside $1 and no row can end up with locked_at set and locked_by NULL).
// MATERIALIZED keeps the planner from pushing the join into the locked subquery and escaping
// the LIMIT (the reason inst-jobs uses a CTE). row_number is ordered explicitly so the mapping
// does not rely on the subquery's output order.
inline std::string reserveSql(const std::string& extraPredicate) {
  return "WITH limited_jobs AS MATERIALIZED ("
         "  SELECT id, row_number() OVER (ORDER BY priority, run_at, id) AS rn FROM ("
         "    SELECT id, priority, run_at FROM delayed_jobs"
         "     WHERE run_at <= " + kNow + " - $6::int8 * interval '1 microsecond'"
         "       AND locked_at IS NULL AND next_in_strand = true" + extraPredicate +
         "       AND priority BETWEEN $3::int AND $4::int AND queue = $2::varchar"
         "     ORDER BY priority, run_at, id"
         "     LIMIT $5::int FOR UPDATE SKIP LOCKED) candidates) "
         "UPDATE delayed_jobs j SET locked_by = COALESCE(($1::text[])[lj.rn], $7::varchar),"
         "  locked_at = " + kNow +
         " FROM limited_jobs lj WHERE lj.id = j.id "
         "RETURNING lj.rn, " + jobColumns("j.");
}
inline const Statement kReserve{"hostq_reserve", reserveSql("")};
/// The written-lock claim for singletons only, beside the held-lock claim of everything else.
inline const Statement kReserveSingletons{"hostq_reserve_singletons",
                                          reserveSql(" AND singleton IS NOT NULL")};

// --- held-lock batches (docs/store.md) ---------------------------------------------------------
// The claim is the row lock of the open transaction: nothing is written, so other claimers
// (hostq servers, inst-jobs' own workers) skip these rows until COMMIT while they still read
// locked_by IS NULL. Singletons are left to the written-lock claim: their unique indexes are
// keyed on locked_by. $1 queue, $2/$3 priority range, $4 limit, $5 forced latency µs.
inline const Statement kClaimHeld{
    "hostq_claim_held",
    "SELECT " + jobColumns("") + " FROM delayed_jobs"
    " WHERE run_at <= " + kNow + " - $5::int8 * interval '1 microsecond'"
    "   AND locked_at IS NULL AND next_in_strand = true AND singleton IS NULL"
    "   AND priority BETWEEN $2::int AND $3::int AND queue = $1::varchar"
    " ORDER BY priority, run_at, id LIMIT $4::int FOR UPDATE SKIP LOCKED"};
// Completes claimed rows. The row lock makes the guard redundant while the transaction lives;
// it keeps a retry on a new connection (after the batch was lost) from deleting a row somebody
// else has since written a lock on.
inline const Statement kCompleteHeld{
    "hostq_complete_held",
    "DELETE FROM delayed_jobs WHERE id = ANY($1::int8[]) AND locked_by IS NULL RETURNING id"};

// Singleton repair (§3.1): the reservation hit index_delayed_jobs_on_singleton_running, i.e. a
// queued twin of a running singleton was next_in_strand. Under the singleton's advisory lock
// (taken by a previous statement, so this statement's snapshot sees everything the lock protects)
// demote the queued twin if exactly one twin is running.
inline const Statement kSingletonLock{
    "hostq_singleton_lock",
    "SELECT pg_advisory_xact_lock(half_md5_as_bigint(CONCAT('singleton:', $1::text)))"};
inline const Statement kSingletonRepair{
    "hostq_singleton_repair",
    "WITH running AS ("
    "  SELECT id FROM delayed_jobs WHERE singleton = $1::varchar AND locked_by IS NOT NULL"
    "     AND locked_by <> 'on hold' FOR UPDATE),"
    " fixed AS ("
    "  UPDATE delayed_jobs SET next_in_strand = false"
    "   WHERE singleton = $1::varchar AND next_in_strand AND locked_by IS NULL"
    "     AND (SELECT count(*) FROM running) = 1 RETURNING id) "
    "SELECT (SELECT count(*) FROM running), (SELECT count(*) FROM fixed)"};

// The CAS on locked_by is written IS NOT DISTINCT FROM (equal here: the expected value is never
// NULL) because a strict `=` lets the planner prove `locked_by IS NOT NULL` and scan the partial
// index on locked_by, which holds every reserved row of the host: measured 27 ms instead of 0.4 ms
// for 100 rows while 2,000 rows were locked. With it, each row is one primary-key probe.
inline const Statement kTransfer{
    "hostq_transfer",
    "UPDATE delayed_jobs d SET locked_by = x.to_by, locked_at = " + kNow +
    "  FROM unnest($1::int8[], $2::text[], $3::text[]) AS x(id, from_by, to_by)"
    " WHERE d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.from_by RETURNING d.id"};

// Success = delete; the AFTER DELETE trigger promotes the strand / singleton successor.
inline const Statement kComplete{
    "hostq_complete",
    "DELETE FROM delayed_jobs d USING unnest($1::int8[], $2::text[]) AS x(id, by)"
    " WHERE d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.by RETURNING d.id"};

inline const Statement kUnlock{
    "hostq_unlock",
    "UPDATE delayed_jobs d SET locked_by = NULL, locked_at = NULL"
    "  FROM unnest($1::int8[], $2::text[]) AS x(id, by)"
    " WHERE d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.by RETURNING d.id"};

/// After an in-doubt CAS batch: where each job stands now (absent ids are gone).
inline const Statement kLockStates{
    "hostq_lock_states", "SELECT id, locked_by FROM delayed_jobs WHERE id = ANY($1::int8[])"};

// $1 ids, $2 expected locked_by, $3 errors, $4 run_at µs (NULL = backoff), $5 count the attempt,
// $6 permanent, $7 default max_attempts, $8 keep failed jobs. Returns each failure's decision
// (permanent, attempts, the next run_at when rescheduled): the only place it is made.
// One statement: the CAS (FOR UPDATE re-checks locked_by against concurrent writers), the copy
// to failed_jobs, the delete and the reschedule see one snapshot and commit together. failed_jobs
// has no triggers, so no strand lock is taken for it (inst-jobs §7.9 #32).
inline const Statement kFail{
    "hostq_fail",
    "WITH input AS ("
    "  SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::bool[])"
    "    AS x(id, locked_by, error, run_at_us, count_attempt, permanent)),"
    " target AS ("
    "  SELECT d.id, x.error, x.run_at_us,"
    "         d.attempts + CASE WHEN x.count_attempt THEN 1 ELSE 0 END AS new_attempts,"
    "         (x.permanent"
    "          OR d.attempts + CASE WHEN x.count_attempt THEN 1 ELSE 0 END"
    "               >= COALESCE(d.max_attempts, $7::int)"
    "          OR (d.expires_at IS NOT NULL AND d.expires_at <= " + kNow + ")) AS permanent"
    "    FROM delayed_jobs d JOIN input x ON d.id = x.id AND d.locked_by IS NOT DISTINCT FROM x.locked_by"
    "     FOR UPDATE OF d),"
    " moved AS ("
    "  INSERT INTO failed_jobs (priority, attempts, handler, last_error, queue, run_at, locked_at,"
    "    failed_at, locked_by, created_at, updated_at, tag, max_attempts, strand, original_job_id,"
    "    source, expires_at, strand_order_override, singleton)"
    "  SELECT d.priority, t.new_attempts, d.handler, t.error, d.queue, d.run_at, d.locked_at, " +
    kNow + ", d.locked_by, d.created_at, " + kNow +
    "       , d.tag, d.max_attempts, d.strand, d.id, d.source, d.expires_at,"
    "         d.strand_order_override, d.singleton"
    "    FROM target t JOIN delayed_jobs d ON d.id = t.id WHERE t.permanent AND $8::bool"
    "  RETURNING original_job_id),"
    " removed AS ("
    "  DELETE FROM delayed_jobs d USING target t WHERE d.id = t.id AND t.permanent RETURNING d.id),"
    " rescheduled AS ("
    "  UPDATE delayed_jobs d SET attempts = t.new_attempts, last_error = t.error,"
    "         run_at = COALESCE(" + ts("t.run_at_us") + ", " + kNow +
    "           + (power(t.new_attempts, 4) + 5) * interval '1 second'),"
    "         locked_by = NULL, locked_at = NULL, updated_at = " + kNow +
    "    FROM target t WHERE d.id = t.id AND NOT t.permanent RETURNING d.id, d.run_at) "
    "SELECT t.id, t.permanent, t.new_attempts, " + us("r.run_at") +
    "  FROM target t LEFT JOIN rescheduled r ON r.id = t.id"};

// --- recovery -----------------------------------------------------------------------------------
inline const Statement kLockedLike{
    "hostq_locked_like",
    "SELECT id, locked_by, " + us("locked_at") + " FROM delayed_jobs"
    " WHERE locked_by LIKE $1::text AND locked_at IS NOT NULL AND locked_by <> 'on hold'"
    " ORDER BY locked_at, id"};
inline const Statement kLockedByAny{
    "hostq_locked_by_any",
    "SELECT id, locked_by FROM delayed_jobs WHERE locked_by = ANY($1::text[]) ORDER BY id"};
inline const Statement kCountLockedBy{
    "hostq_count_locked_by", "SELECT count(*) FROM delayed_jobs WHERE locked_by = $1::varchar"};
inline const Statement kClearLocks{
    "hostq_clear_locks",
    "UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL WHERE locked_by = $1::varchar"};
// One statement = one transaction, so the xact try-lock is held exactly while the UPDATE runs.
inline const Statement kPurgePrefetched{
    "hostq_purge_prefetched",
    "WITH l AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(half_md5_as_bigint("
    "    'Delayed::Job.unlock_orphaned_prefetched_jobs')) AS got),"
    " u AS (UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL"
    "        WHERE (SELECT got FROM l) AND locked_by LIKE 'prefetch:%'"
    "          AND locked_at < " + kNow + " - $1::int8 * interval '1 second' RETURNING 1) "
    "SELECT (SELECT got FROM l), (SELECT count(*) FROM u)"};

inline const Statement kHold{
    "hostq_hold",
    "UPDATE delayed_jobs SET locked_by = 'on hold', locked_at = " + kNow +
    ", attempts = 50 WHERE id = ANY($1::int8[]) AND locked_by IS NULL"};
inline const Statement kUnhold{
    "hostq_unhold",
    "UPDATE delayed_jobs SET locked_by = NULL, locked_at = NULL, attempts = 0,"
    " run_at = GREATEST(run_at, " + kNow + "), failed_at = NULL"
    " WHERE id = ANY($1::int8[]) AND locked_by = 'on hold'"};

// Requeue (§6.5): attempts are kept, so the new job runs once. The strand lock precedes the
// insert as in kInsert. run_at is copied (it is in the past, so the job is runnable now).
inline const Statement kRequeue{
    "hostq_requeue",
    "WITH f AS (SELECT * FROM failed_jobs WHERE id = $1::int8 FOR UPDATE),"
    " strand_lock AS ("
    "  SELECT count(*) FROM (SELECT pg_advisory_xact_lock(half_md5_as_bigint(f.strand)) FROM f"
    "                         WHERE f.strand IS NOT NULL) l),"
    " ins AS ("
    "  INSERT INTO delayed_jobs (priority, attempts, handler, queue, run_at, created_at, updated_at,"
    "    tag, max_attempts, strand, source, expires_at, strand_order_override, singleton)"
    "  SELECT f.priority, f.attempts, f.handler, f.queue, f.run_at, f.created_at, " + kNow +
    "       , f.tag, f.max_attempts, f.strand, f.source, f.expires_at, f.strand_order_override,"
    "         f.singleton"
    "    FROM f, strand_lock RETURNING id),"
    " upd AS (UPDATE failed_jobs SET requeued_job_id = (SELECT id FROM ins) WHERE id = $1::int8) "
    "SELECT id FROM ins"};

// --- queries ------------------------------------------------------------------------------------
inline const Statement kFind{
    "hostq_find", "SELECT " + jobColumns("") + " FROM delayed_jobs WHERE id = $1::int8"};
inline const Statement kFindFailed{
    "hostq_find_failed",
    "SELECT " + jobColumns("", true) + " FROM failed_jobs"
    " WHERE original_job_id = $1::int8 OR id = $1::int8"
    " ORDER BY (original_job_id = $1::int8) DESC, id DESC LIMIT 1"};

inline std::string listSql(const std::string& where, const std::string& order, bool failed = false) {
  return "SELECT " + jobColumns("", failed) + " FROM " + (failed ? "failed_jobs" : "delayed_jobs") +
         " WHERE " + where + " ORDER BY " + order + " LIMIT $2::int OFFSET $3::int";
}
inline const Statement kListCurrent{
    "hostq_list_current",
    listSql("($1::text = '' OR queue = $1::text) AND run_at <= " + kNow, "id")};
inline const Statement kListFuture{
    "hostq_list_future",
    listSql("($1::text = '' OR queue = $1::text) AND run_at > " + kNow, "run_at, id")};
inline const Statement kListRunning{
    "hostq_list_running",
    listSql("($1::text = '' OR queue = $1::text) AND locked_at IS NOT NULL"
            " AND locked_by <> 'on hold'",
            "locked_at, id")};
inline const Statement kListFailed{
    "hostq_list_failed", listSql("($1::text = '' OR queue = $1::text)", "id DESC", true)};
inline const Statement kListStrand{
    "hostq_list_strand", listSql("strand = $1::text", "strand_order_override, id")};
inline const Statement kListTag{"hostq_list_tag", listSql("tag = $1::text", "id")};

/// Per-`key` counts of live and failed jobs (QueueCount's columns) over the rows where `where`
/// holds (it may use parameters); rows with a NULL key are left out.
inline std::string countsSql(const std::string& key, const std::string& where) {
  return "WITH live AS ("
         "  SELECT " + key + " AS k,"
         "    count(*) FILTER (WHERE locked_by IS NULL AND next_in_strand AND run_at <= " + kNow + ") q,"
         "    count(*) FILTER (WHERE locked_by IS NULL AND next_in_strand AND run_at > " + kNow + ") f,"
         "    count(*) FILTER (WHERE locked_by IS NULL AND NOT next_in_strand) b,"
         "    count(*) FILTER (WHERE locked_by <> 'on hold' AND locked_by NOT LIKE 'prefetch:%') r,"
         "    count(*) FILTER (WHERE locked_by LIKE 'prefetch:%') p,"
         "    count(*) FILTER (WHERE locked_by = 'on hold') h"
         "  FROM delayed_jobs WHERE " + key + " IS NOT NULL AND " + where + " GROUP BY 1),"
         " dead AS (SELECT " + key + " AS k, count(*) n FROM failed_jobs"
         "   WHERE " + key + " IS NOT NULL AND " + where + " GROUP BY 1) "
         "SELECT COALESCE(l.k, d.k), COALESCE(l.q, 0), COALESCE(l.f, 0), COALESCE(l.b, 0),"
         "       COALESCE(l.r, 0), COALESCE(l.p, 0), COALESCE(l.h, 0), COALESCE(d.n, 0)"
         "  FROM live l FULL JOIN dead d ON l.k = d.k ORDER BY 1";
}
inline const Statement kCounts{"hostq_counts", countsSql("queue", "true")};

inline const Statement kHasRunnable{
    "hostq_has_runnable",
    "SELECT EXISTS (SELECT 1 FROM delayed_jobs WHERE run_at <= " + kNow +
    " AND locked_at IS NULL AND next_in_strand = true AND priority BETWEEN $2::int AND $3::int"
    " AND queue = $1::varchar)"};

// --- migrations ---------------------------------------------------------------------------------
/// Key of the migration lock: database-wide, so migrators of different schemas also queue up
/// (harmless, migrations are short). The value is half_md5_as_bigint('hostq:migrate'), spelled
/// out because the function may not exist yet.
inline const std::string kMigrateLock = "SELECT pg_advisory_xact_lock(('x' || substr(md5('hostq:migrate'), 1, 16))::bit(64)::bigint)";
// Not prepared: the table may not exist yet, and a prepared statement could not be planned.
inline const std::string kMigrationsTableExists =
    "SELECT to_regclass('hostq_schema_migrations') IS NOT NULL";
inline const std::string kMaxVersion = "SELECT COALESCE(max(version), 0) FROM hostq_schema_migrations";

}  // namespace hostq::store::sql
