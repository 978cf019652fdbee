// The parts of the public headers that work without a database: Outcome's accessors, the
// version, the names of job states and count keys, a client's option checks.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "hostq/hostq.hpp"

namespace hostq {
namespace {

TEST(Outcome, ErrorOfASuccessIsEmptyNotUndefined) {
  const auto ok = Outcome::success();
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.error(), "");
  EXPECT_FALSE(ok.runAt().has_value());
}

TEST(Outcome, FailureKeepsItsMessageAndRetryTime) {
  const auto failed = Outcome::failure("boom");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.error(), "boom");
  const TimePoint when{std::chrono::microseconds(1'700'000'000'000'000)};
  const auto retry = Outcome::retryAt("later", when);
  EXPECT_EQ(retry.error(), "later");
  EXPECT_EQ(retry.runAt(), when);
  EXPECT_FALSE(Outcome::failure("").ok());  // an empty message is still a failure
}

TEST(Version, LibraryAndHeaderAgree) {
  EXPECT_STREQ(version(), kVersionString);
  EXPECT_EQ(std::string(kVersionString),
            std::to_string(kVersionMajor) + "." + std::to_string(kVersionMinor) + "." + std::to_string(kVersionPatch));
}

TEST(JobState, NamesRoundTrip) {
  for (auto s : {JobState::Queued, JobState::Future, JobState::Blocked, JobState::Running, JobState::Prefetched,
                 JobState::Held, JobState::Failed}) {
    EXPECT_EQ(parseJobState(toString(s)), s) << toString(s);
  }
  EXPECT_FALSE(parseJobState("Queued").has_value());
  EXPECT_EQ(parseCountBy("strand"), CountBy::Strand);
  EXPECT_FALSE(parseCountBy("state").has_value());
}

TEST(JobSelector, EmptyOnlyWithNothingGiven) {
  EXPECT_TRUE(JobSelector{}.empty());
  EXPECT_FALSE(JobSelector{.ids = {1}}.empty());
  EXPECT_FALSE(JobSelector{.queue = ""}.empty());  // an empty queue name is still a condition
}

}  // namespace
}  // namespace hostq
