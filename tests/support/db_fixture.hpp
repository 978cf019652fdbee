#pragma once
// Tests against a real PostgreSQL: HOSTQ_TEST_DATABASE_URL names it (scripts/pg.sh sets one up);
// without it every db test is skipped with a message, or fails when CI is set (a CI run with no
// database must not come out green with every db test skipped). Each test case gets its own schema (name
// from the test name and the pid), so `ctest -j` runs cases side by side; advisory-lock keys are
// database-wide, which only ever makes parallel cases wait for each other briefly.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "store/pg_connection.hpp"
#include "store/store.hpp"

namespace hostq::test {

/// The URL of the test database, or nullopt.
std::optional<std::string> testDatabaseUrl();

/// The environment variable CI is set and not empty: this run is CI's.
bool onCi();

/// For a test that cannot get the PostgreSQL it needs: skips it in a local run, fails it under
/// CI. Returns from the calling function, like GTEST_SKIP().
#define HOSTQ_SKIP_OR_FAIL_ON_CI(message)                                           \
  do {                                                                             \
    if (::hostq::test::onCi()) {                                                   \
      GTEST_FAIL() << message << " (CI is set: a failure there, a skip locally)"; \
    } else {                                                                       \
      GTEST_SKIP() << message;                                                     \
    }                                                                              \
  } while (0)

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  /// Options for the main store (and connectStore's default); override to change them.
  virtual StoreOptions storeOptions() const { return {}; }
  /// Whether SetUp runs migrate() on the fresh schema.
  virtual bool migrateOnSetUp() const { return true; }

  /// Another Store on this test's schema (e.g. one per thread).
  std::unique_ptr<Store> connectStore(std::optional<StoreOptions> options = std::nullopt) const;

  /// Runs SQL on a side connection (search_path = this schema, the store's session settings)
  /// and returns the first column of the first row ("" when there is none, "NULL" for a null).
  /// Throws DbError when the statement fails.
  std::string query(const std::string& sql) const;
  std::int64_t queryInt(const std::string& sql) const { return std::stoll(query(sql)); }
  void sql(const std::string& statement) const { (void)query(statement); }

  /// A plain job in the default queue.
  static NewJob job(std::string tag = "TestJob#perform");
  /// Enqueues and returns the id (fails the test on Dropped).
  JobId put(const NewJob& j) const;
  /// One worker's reservation (inst-jobs' single-name get_and_lock_next_available).
  std::optional<Job> pop(const std::string& worker = "host:1", const std::string& queue = "queue",
                         int minPriority = kMinPriority, int maxPriority = kMaxPriority) const;
  /// Deletes a job as its owner would on success (or directly when unlocked).
  void destroy(JobId id) const;
  /// A counted, non-permanent failure report.
  static Failure failure(JobId id, std::string lockedBy, std::string error = "boom");
  bool nextInStrand(JobId id) const;
  bool exists(JobId id) const;

  const std::string& schema() const { return m_schema; }
  const std::string& url() const { return m_url; }

  std::unique_ptr<Store> store;

 private:
  std::string m_url;
  std::string m_schema;
  std::unique_ptr<store::PgConnection> m_side;
};

}  // namespace hostq::test
