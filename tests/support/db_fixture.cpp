#include "support/db_fixture.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <stdexcept>

namespace hostq::test {

std::optional<std::string> testDatabaseUrl() {
  const char* url = std::getenv("HOSTQ_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

bool onCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0';
}

namespace {
std::string schemaNameFor(const ::testing::TestInfo* info) {
  std::string base = std::string(info->test_suite_name()) + "_" + info->name();
  std::string clean;
  for (char c : base) clean += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
  const std::string suffix = "_" + std::to_string(::getpid());
  // identifiers stop at 63 bytes; keep a hash of the full name so truncation stays unique
  if (clean.size() + suffix.size() + 2 > 63) {
    clean = clean.substr(0, 40) + "_" + std::to_string(std::hash<std::string>{}(clean) % 100000);
  }
  return "t_" + clean + suffix;
}
}  // namespace

void DbTest::SetUp() {
  auto url = testDatabaseUrl();
  if (!url) {
    HOSTQ_SKIP_OR_FAIL_ON_CI("HOSTQ_TEST_DATABASE_URL is not set; db tests need a PostgreSQL "
                             "(`. scripts/pg.sh; pg_up` then HOSTQ_TEST_DATABASE_URL=$HOSTQ_PG_URL)");
  }
  m_url = *url;
  m_schema = schemaNameFor(::testing::UnitTest::GetInstance()->current_test_info());
  StoreOptions side;
  side.schema = m_schema;  // search_path may name a schema that does not exist yet
  side.application_name = "hostq-test side";
  m_side = std::make_unique<store::PgConnection>(m_url, side);
  ASSERT_NO_THROW(m_side->open());
  ASSERT_NO_THROW(sql("DROP SCHEMA IF EXISTS " + m_schema + " CASCADE; CREATE SCHEMA " + m_schema));
  store = connectStore();
  if (migrateOnSetUp()) {
    ASSERT_GT(store->migrate(), 0);
  }
}

void DbTest::TearDown() {
  store.reset();
  if (m_side && m_side->ok()) {
    try {
      sql("DROP SCHEMA IF EXISTS " + m_schema + " CASCADE");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "dropping the test schema: " << e.what();
    }
  }
  m_side.reset();
}

std::unique_ptr<Store> DbTest::connectStore(std::optional<StoreOptions> options) const {
  StoreOptions o = options.value_or(storeOptions());
  o.schema = m_schema;
  if (o.application_name == StoreOptions{}.application_name) o.application_name = "hostq-test";
  return Store::connect(m_url, o);
}

std::string DbTest::query(const std::string& statement) const {
  const auto r = m_side->simple(statement, store::Phase::Write);
  if (r.rows() == 0 || r.columns() == 0) return "";
  return r.isNull(0, 0) ? "NULL" : r.str(0, 0);
}

NewJob DbTest::job(std::string tag) {
  NewJob j;
  j.tag = std::move(tag);
  j.payload = "--- !ruby/object:TestJob {}";
  return j;
}

JobId DbTest::put(const NewJob& j) const {
  auto e = store->enqueue(j);
  EXPECT_NE(e.result, EnqueueResult::Dropped);
  return e.id;
}

std::optional<Job> DbTest::pop(const std::string& worker, const std::string& queue,
                               int minPriority, int maxPriority) const {
  ReserveRequest r;
  r.worker_names = {worker};
  r.queue = queue;
  r.min_priority = minPriority;
  r.max_priority = maxPriority;
  auto res = store->reserve(r);
  if (res.assigned.empty()) return std::nullopt;
  return res.assigned.front().second;
}

void DbTest::destroy(JobId id) const {
  sql("DELETE FROM delayed_jobs WHERE id = " + std::to_string(id));
}

Failure DbTest::failure(JobId id, std::string lockedBy, std::string error) {
  Failure f;
  f.id = id;
  f.locked_by = std::move(lockedBy);
  f.error = std::move(error);
  return f;
}

bool DbTest::nextInStrand(JobId id) const {
  return query("SELECT next_in_strand FROM delayed_jobs WHERE id = " + std::to_string(id)) == "t";
}

bool DbTest::exists(JobId id) const {
  return queryInt("SELECT count(*) FROM delayed_jobs WHERE id = " + std::to_string(id)) == 1;
}

}  // namespace hostq::test
