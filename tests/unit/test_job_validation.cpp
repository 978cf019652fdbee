// store::validateNewJob: the one set of new-job rules and messages, shared by the store and
// `hostq enqueue`, without a database.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "hostq/error.hpp"
#include "store/job_validation.hpp"

namespace {

using hostq::NewJob;

NewJob valid() {
  NewJob j;
  j.tag = "Mail#deliver";
  return j;
}

/// The message validateNewJob gives for `valid()` changed by `change`, or "" when it accepts it.
std::string messageFor(const std::function<void(NewJob&)>& change) {
  NewJob j = valid();
  change(j);
  try {
    hostq::store::validateNewJob(j);
    return "";
  } catch (const hostq::ValidationError& e) {
    return e.what();
  }
}

TEST(JobValidation, EachRuleHasItsMessage) {
  EXPECT_EQ(messageFor([](NewJob&) {}), "");
  EXPECT_EQ(messageFor([](NewJob& j) { j.tag.clear(); }), "tag must not be empty");
  EXPECT_EQ(messageFor([](NewJob& j) { j.queue = " \t"; }), "queue must not be blank");
  EXPECT_EQ(messageFor([](NewJob& j) { j.queue.clear(); }), "queue must not be blank");
  EXPECT_EQ(messageFor([](NewJob& j) { j.priority = -1; }), "priority must be between 0 and 1000000 (got -1)");
  EXPECT_EQ(messageFor([](NewJob& j) { j.priority = 1'000'001; }),
            "priority must be between 0 and 1000000 (got 1000001)");
  EXPECT_EQ(messageFor([](NewJob& j) { j.strand = "s", j.n_strand = "n"; }),
            "strand and n_strand are mutually exclusive");
  EXPECT_EQ(messageFor([](NewJob& j) { j.max_concurrent = 2; }), "max_concurrent needs n_strand");
  EXPECT_EQ(messageFor([](NewJob& j) { j.n_strand = "n", j.max_concurrent = 0; }),
            "max_concurrent must be at least 1 (got 0)");
  EXPECT_EQ(messageFor([](NewJob& j) { j.on_conflict = hostq::OnConflict::Loose; }), "on_conflict needs singleton");
  EXPECT_EQ(messageFor([](NewJob& j) { j.max_attempts = -2; }), "max_attempts must be positive (got -2)");
}

TEST(JobValidation, TheEdgesOfEachRangeAreAccepted) {
  EXPECT_EQ(messageFor([](NewJob& j) { j.priority = hostq::kMinPriority; }), "");
  EXPECT_EQ(messageFor([](NewJob& j) { j.priority = hostq::kMaxPriority; }), "");
  EXPECT_EQ(messageFor([](NewJob& j) { j.n_strand = "n", j.max_concurrent = 1; }), "");
  EXPECT_EQ(messageFor([](NewJob& j) { j.singleton = "s", j.on_conflict = hostq::OnConflict::Overwrite; }), "");
  // 0 and -1: the first failure is final.
  EXPECT_EQ(messageFor([](NewJob& j) { j.max_attempts = 0; }), "");
  EXPECT_EQ(messageFor([](NewJob& j) { j.max_attempts = -1; }), "");
}

}  // namespace
