// The throwaway cluster behind `hostq demo` / `hostq bench`: it starts, the store can use it,
// and it leaves nothing behind.
#include <gtest/gtest.h>

#include <filesystem>

#include "hostq/error.hpp"
#include "store/store.hpp"
#include "pool/embedded_postgres.hpp"
#include "support/db_fixture.hpp"

namespace {

void skipWithoutPostgres() {
  if (hostq::EmbeddedPostgres::findBinDir().empty())
    HOSTQ_SKIP_OR_FAIL_ON_CI("no PostgreSQL server binaries (initdb) installed");
}

}  // namespace

TEST(EmbeddedPostgres, StartsMigratesAndRemovesItsDirectoryOnStop) {
  skipWithoutPostgres();
  if (IsSkipped() || HasFatalFailure()) return;
  auto pg = hostq::EmbeddedPostgres::start();
  const std::string dir = pg->dir();
  ASSERT_TRUE(std::filesystem::is_directory(dir + "/data"));
  EXPECT_NE(pg->url().find(dir), std::string::npos) << pg->url();
  {
    auto store = hostq::Store::connect(pg->url());
    EXPECT_GT(store->migrate(), 0);
    EXPECT_EQ(store->schemaVersion(), hostq::Store::latestSchemaVersion());
    hostq::NewJob job;
    job.tag = "Embedded#run";
    EXPECT_GT(store->enqueue(job).id, 0);
    // Unix socket in the cluster's directory only.
    store->exec("DO $$ BEGIN IF current_setting('listen_addresses') <> '' THEN RAISE 'tcp on'; END IF; END $$");
    store->exec("DO $$ BEGIN IF current_setting('fsync') <> 'on' THEN RAISE 'fsync off'; END IF; END $$");
  }
  pg->stop();
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_TRUE(pg->dir().empty());
  pg->stop();  // idempotent
  hostq::StoreOptions noRetry;
  noRetry.reconnect_attempts = 0;
  EXPECT_THROW(hostq::Store::connect(pg->url(), noRetry), hostq::DbError);
}

TEST(EmbeddedPostgres, DestructorStopsAndCleansUp) {
  skipWithoutPostgres();
  if (IsSkipped() || HasFatalFailure()) return;
  std::string dir, url;
  {
    auto pg = hostq::EmbeddedPostgres::start();
    dir = pg->dir();
    url = pg->url();
    auto other = hostq::EmbeddedPostgres::start();  // two at once are independent
    EXPECT_NE(other->dir(), dir);
    hostq::Store::connect(other->url())->migrate();
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
  hostq::StoreOptions noRetry;
  noRetry.reconnect_attempts = 0;
  EXPECT_THROW(hostq::Store::connect(url, noRetry), hostq::DbError);
}

TEST(EmbeddedPostgres, AFailedStartLeavesNothingBehind) {
  skipWithoutPostgres();
  if (IsSkipped() || HasFatalFailure()) return;
  const auto parent = std::filesystem::temp_directory_path() / ("hostq-embedded-" + std::to_string(::getpid()));
  std::filesystem::create_directories(parent);
  hostq::EmbeddedPostgres::Options o;
  o.parent_dir = parent.string();
  o.max_connections = -1;  // the server refuses to start
  EXPECT_THROW(hostq::EmbeddedPostgres::start(o), std::runtime_error);
  EXPECT_TRUE(std::filesystem::is_empty(parent));
  std::filesystem::remove_all(parent);
}
