// The db fixture's rule for a run without a database: a local run skips its db tests, a CI run
// (CI set, not empty) fails them, so CI cannot come out green with every db test skipped.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/db_fixture.hpp"
#include "support/farm.hpp"
#include "support/scoped_env.hpp"

namespace hostq {
namespace {

class DbFixtureProbe : public test::DbTest {};

TEST_F(DbFixtureProbe, ReachesItsMigratedSchema) { EXPECT_EQ(queryInt("SELECT count(*) FROM delayed_jobs"), 0); }

/// This binary run again on DbFixtureProbe alone, with no test database and CI = `ci`.
test::Proc probeWithoutADatabase(const test::ScratchDir& dir, const char* ci) {
  test::ScopedEnv no_url("HOSTQ_TEST_DATABASE_URL", nullptr);
  test::ScopedEnv ci_env("CI", ci);
  return test::Proc::exec(dir, std::string("probe-") + (ci ? ci : "unset"),
                          {std::filesystem::read_symlink("/proc/self/exe").string(),
                           "--gtest_filter=DbFixtureProbe.*", "--gtest_color=no"});
}

/// The probe's outputs for a failure message, with gtest's skip marker defused: ctest takes that
/// marker anywhere in a test's output as "skipped", which would hide this test's own failure.
std::string shown(const test::Proc& p) {
  std::string s = p.describe();
  for (std::size_t at; (at = s.find("[  SKIPPED ]")) != std::string::npos;) s.replace(at, 12, "[  skipped ]");
  return s;
}

TEST(DbFixture, WithoutADatabaseALocalRunSkips) {
  test::ScratchDir dir;
  for (const char* ci : {static_cast<const char*>(nullptr), ""}) {
    auto p = probeWithoutADatabase(dir, ci);
    EXPECT_EQ(p.wait(), 0) << shown(p);
    EXPECT_NE(p.out().find("[  SKIPPED ] DbFixtureProbe.ReachesItsMigratedSchema"), std::string::npos)
        << shown(p);
  }
}

TEST(DbFixture, WithoutADatabaseACiRunFails) {
  test::ScratchDir dir;
  auto p = probeWithoutADatabase(dir, "true");
  EXPECT_EQ(p.wait(), 1) << shown(p);
  EXPECT_NE(p.out().find("[  FAILED  ] DbFixtureProbe.ReachesItsMigratedSchema"), std::string::npos)
      << shown(p);
}

}  // namespace
}  // namespace hostq
