// CronSchedule: parsing and the next matching second, in UTC, without a database.
#include <gtest/gtest.h>

#include <chrono>

#include "common/cron.hpp"
#include "hostq/error.hpp"

namespace {

using hostq::CronSchedule;
using hostq::TimePoint;
namespace chr = std::chrono;

TimePoint at(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0, int us = 0) {
  return chr::time_point_cast<chr::microseconds>(chr::sys_days(chr::year{y} / mo / d)) + chr::hours(h) +
         chr::minutes(mi) + chr::seconds(s) + chr::microseconds(us);
}

TimePoint next(const char* expr, TimePoint after) {
  auto t = CronSchedule::parse(expr).next(after);
  EXPECT_TRUE(t) << expr;
  return t.value_or(TimePoint{});
}

TEST(Cron, FiveFieldsStartOnTheMinute) {
  EXPECT_EQ(next("* * * * *", at(2026, 3, 1, 12, 0, 0)), at(2026, 3, 1, 12, 1, 0));
  EXPECT_EQ(next("* * * * *", at(2026, 3, 1, 12, 0, 59, 999'999)), at(2026, 3, 1, 12, 1, 0));
  EXPECT_EQ(next("*/15 * * * *", at(2026, 3, 1, 12, 7, 3)), at(2026, 3, 1, 12, 15, 0));
  EXPECT_EQ(next("0 3 * * *", at(2026, 3, 1, 3, 0, 0)), at(2026, 3, 2, 3, 0, 0));  // strictly after
  EXPECT_EQ(next("30 2 1 * *", at(2026, 12, 15)), at(2027, 1, 1, 2, 30, 0));      // over the year's end
}

TEST(Cron, SixFieldsHaveSecondsFirst) {
  EXPECT_EQ(next("* * * * * *", at(2026, 3, 1, 12, 0, 0, 500)), at(2026, 3, 1, 12, 0, 1));
  EXPECT_EQ(next("*/10 * * * * *", at(2026, 3, 1, 12, 0, 41)), at(2026, 3, 1, 12, 0, 50));
  EXPECT_EQ(next("5 0 * * * *", at(2026, 3, 1, 12, 0, 5)), at(2026, 3, 1, 13, 0, 5));
}

TEST(Cron, ListsRangesStepsAndNames) {
  EXPECT_EQ(next("0 9-17/4 * * *", at(2026, 3, 1, 13, 30)), at(2026, 3, 1, 17, 0));
  EXPECT_EQ(next("0 0 * * mon,fri", at(2026, 3, 2)), at(2026, 3, 6));     // 2026-03-02 is a Monday
  EXPECT_EQ(next("0 0 * * 7", at(2026, 3, 2)), at(2026, 3, 8));           // 7 = Sunday
  EXPECT_EQ(next("0 0 1 jun *", at(2026, 3, 2)), at(2026, 6, 1));
  EXPECT_EQ(next("0 0 29 2 *", at(2026, 3, 2)), at(2028, 2, 29));         // the next leap day
  EXPECT_EQ(next("10/20 * * * *", at(2026, 3, 1, 0, 31)), at(2026, 3, 1, 0, 50));
  EXPECT_EQ(next("@daily", at(2026, 3, 1, 0, 0, 1)), at(2026, 3, 2));
  EXPECT_EQ(next("@hourly", at(2026, 3, 1, 0, 0, 1)), at(2026, 3, 1, 1));
  EXPECT_EQ(next("*/2147483647 * * * *", at(2026, 3, 1, 0, 0, 1)), at(2026, 3, 1, 1));  // a step past the range

}

TEST(Cron, DayOfMonthOrDayOfWeekWhenBothAreGiven) {
  // The 13th, or any Friday: 2026-03-06 is a Friday before the 13th.
  EXPECT_EQ(next("0 0 13 * fri", at(2026, 3, 2)), at(2026, 3, 6));
  EXPECT_EQ(next("0 0 13 * fri", at(2026, 3, 12)), at(2026, 3, 13));
}

TEST(Cron, ImpossibleDatesHaveNoNextRun) {
  EXPECT_FALSE(CronSchedule::parse("0 0 30 2 *").next(at(2026, 1, 1)));
}

TEST(Cron, BadExpressionsNameTheField) {
  auto message = [](const char* expr) {
    try {
      CronSchedule::parse(expr);
    } catch (const hostq::ValidationError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message("* * * *").find("expected 5 fields"), std::string::npos);
  EXPECT_NE(message("* * * * * * *").find("got 7"), std::string::npos);
  EXPECT_NE(message("60 * * * *").find("minute field"), std::string::npos);
  EXPECT_NE(message("* 24 * * *").find("hour field"), std::string::npos);
  EXPECT_NE(message("* * 0 * *").find("day-of-month field"), std::string::npos);
  EXPECT_NE(message("* * * 13 *").find("month field"), std::string::npos);
  EXPECT_NE(message("* * * * 8").find("day-of-week field"), std::string::npos);
  EXPECT_NE(message("*/0 * * * *").find("bad step"), std::string::npos);
  EXPECT_NE(message("5-1 * * * *").find("backwards"), std::string::npos);
  EXPECT_NE(message("1,,2 * * * *").find("empty"), std::string::npos);
  EXPECT_NE(message("x * * * *").find("not a number"), std::string::npos);
  EXPECT_NE(message("@often").find("expected 5 fields"), std::string::npos);
}

}  // namespace
