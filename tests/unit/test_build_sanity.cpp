#include <gtest/gtest.h>

#include "hostq/job.hpp"

TEST(Job, DefaultsToNormalPriority) { EXPECT_EQ(hostq::Job{}.priority, hostq::kNormalPriority); }
