// Schema and migrations: versioning, idempotence, refusal of a newer schema, inst-jobs objects.
#include <thread>

#include "support/db_fixture.hpp"

namespace hostq::test {
namespace {

class StoreSchema : public DbTest {
 protected:
  bool migrateOnSetUp() const override { return false; }
};

TEST_F(StoreSchema, FreshSchemaHasVersionZero) { EXPECT_EQ(store->schemaVersion(), 0); }

TEST_F(StoreSchema, MigrateAppliesEverythingThenIsANoOp) {
  EXPECT_EQ(store->migrate(), Store::latestSchemaVersion());
  EXPECT_EQ(store->schemaVersion(), Store::latestSchemaVersion());
  EXPECT_EQ(store->migrate(), 0);
  EXPECT_EQ(queryInt("SELECT count(*) FROM hostq_schema_migrations"), Store::latestSchemaVersion());
}

TEST_F(StoreSchema, ConcurrentMigratorsApplyEachMigrationOnce) {
  std::vector<int> applied(4, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { applied[i] = connectStore()->migrate(); });
  }
  for (auto& t : threads) t.join();
  int total = 0;
  for (int a : applied) total += a;
  EXPECT_EQ(total, Store::latestSchemaVersion());
  EXPECT_EQ(queryInt("SELECT count(*) FROM hostq_schema_migrations"), Store::latestSchemaVersion());
}

TEST_F(StoreSchema, NewerSchemaIsRefusedAndLeftUntouched) {
  store->migrate();
  sql("INSERT INTO hostq_schema_migrations (version, name) VALUES (9999, '9999_future.sql')");
  const auto before = queryInt("SELECT count(*) FROM hostq_schema_migrations");
  try {
    store->migrate();
    FAIL() << "expected SchemaTooNewError";
  } catch (const SchemaTooNewError& e) {
    EXPECT_NE(std::string(e.what()).find("9999"), std::string::npos) << e.what();
  }
  EXPECT_EQ(queryInt("SELECT count(*) FROM hostq_schema_migrations"), before);
  EXPECT_EQ(store->schemaVersion(), 9999);
}

TEST_F(StoreSchema, MigratingOverAnExistingInstJobsSchemaKeepsItsRows) {
  store->migrate();
  const auto id = put(job());
  // Forget our bookkeeping, as if Ruby inst-jobs had created the tables: migrations must coexist.
  sql("DROP TABLE hostq_schema_migrations");
  EXPECT_EQ(store->migrate(), Store::latestSchemaVersion());
  EXPECT_TRUE(exists(id));
}

TEST_F(StoreSchema, HalfMd5MatchesInstJobsPlpgsqlDefinition) {
  store->migrate();
  // inst-jobs' original formula, byte by byte; both must give the same advisory-lock keys.
  for (const char* s : {"abc", "singleton:foo", "Delayed::Job.unlock_orphaned_prefetched_jobs", "", "ünï"}) {
    const std::string lit = "'" + std::string(s) + "'";
    const std::string ours = query("SELECT half_md5_as_bigint(" + lit + ")");
    const std::string theirs = query(
        "SELECT (CAST(get_byte(m, 0) AS bigint) << 56) + (CAST(get_byte(m, 1) AS bigint) << 48) +"
        " (CAST(get_byte(m, 2) AS bigint) << 40) + (CAST(get_byte(m, 3) AS bigint) << 32) +"
        " (CAST(get_byte(m, 4) AS bigint) << 24) + (get_byte(m, 5) << 16) + (get_byte(m, 6) << 8) +"
        " get_byte(m, 7) FROM (SELECT decode(md5(" + lit + "), 'hex') AS m) x");
    EXPECT_EQ(ours, theirs) << s;
  }
}

TEST_F(StoreSchema, TablesIndexesAndTriggersMatchInstJobs) {
  store->migrate();
  for (const char* idx :
       {"get_delayed_jobs_index", "index_delayed_jobs_on_locked_by", "index_delayed_jobs_on_run_at_and_tag",
        "index_delayed_jobs_on_tag", "index_delayed_jobs_on_strand", "next_in_strand_index", "n_strand_index",
        "index_delayed_jobs_on_singleton_not_running", "index_delayed_jobs_on_singleton_running",
        "index_failed_jobs_on_failed_at", "index_failed_jobs_on_strand", "index_failed_jobs_on_singleton",
        "index_failed_jobs_on_tag"}) {
    EXPECT_EQ(query("SELECT to_regclass('" + std::string(idx) + "') IS NOT NULL"), "t") << idx;
  }
  for (const char* tr : {"delayed_jobs_before_insert_row_tr", "delayed_jobs_after_delete_row_tr",
                         "delayed_jobs_before_unlock_delete_conflicting_singletons_row_tr",
                         "hostq_notify_jobs_tr"}) {
    EXPECT_EQ(queryInt("SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                       " WHERE c.relname = 'delayed_jobs' AND c.relnamespace = '" + schema() +
                       "'::regnamespace AND t.tgname = '" + tr + "'"),
              1)
        << tr;
  }
  EXPECT_EQ(query("SELECT data_type FROM information_schema.columns WHERE table_schema = '" + schema() +
                  "' AND table_name = 'failed_jobs' AND column_name = 'original_job_id'"),
            "bigint");
  EXPECT_EQ(query("SELECT column_default FROM information_schema.columns WHERE table_schema = '" +
                  schema() + "' AND table_name = 'delayed_jobs' AND column_name = 'next_in_strand'"),
            "true");
  EXPECT_EQ(queryInt("SELECT count(*) FROM information_schema.columns WHERE table_schema = '" + schema() +
                     "' AND table_name = 'delayed_jobs'"),
            21);
}

}  // namespace
}  // namespace hostq::test
