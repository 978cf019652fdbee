#pragma once
// Cron expressions for periodic jobs: 5 fields (minute hour day-of-month month day-of-week) or 6
// with seconds first, as inst-jobs' Fugit reads them, evaluated in UTC (the database's clock zone:
// every time hostq stores is UTC).
//   field := * | */N | A | A-B | A-B/N | A/N, and comma lists of those
//   months may be jan…dec, days of week sun…sat (0 and 7 are Sunday)
//   @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly
// When both day-of-month and day-of-week are restricted, a day matching either one matches
// (classic cron).
#include <bitset>
#include <optional>
#include <string>
#include <string_view>

#include "hostq/job.hpp"

namespace hostq {

class CronSchedule {
 public:
  /// Throws ValidationError naming the bad field.
  static CronSchedule parse(std::string_view expression);

  /// The first matching second strictly after `after`; nullopt when none comes within 5 years
  /// (e.g. "0 0 30 2 *").
  std::optional<TimePoint> next(TimePoint after) const;

 private:
  std::bitset<60> m_second, m_minute;
  std::bitset<24> m_hour;
  std::bitset<32> m_dom;    // 1…31
  std::bitset<13> m_month;  // 1…12
  std::bitset<7> m_dow;     // 0 = Sunday
  bool m_domAny = true, m_dowAny = true;
};

}  // namespace hostq
