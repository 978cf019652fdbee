#pragma once
// TIME arguments of the command line and how times are printed. Header-only for the unit tests.
//   TIME := ISO 8601 date[time][zone] (UTC when no zone is given) | +SECONDS (relative)
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "hostq/job.hpp"

namespace hostq::cli {

struct TimeArg {
  std::optional<TimePoint> at;                 ///< absolute, UTC
  std::optional<std::chrono::microseconds> in;  ///< "+SECONDS": relative to now
};

namespace times_detail {

// Reads exactly `n` digits.
inline bool digits(std::string_view& s, int n, int& out) {
  if (s.size() < static_cast<std::size_t>(n)) return false;
  out = 0;
  for (int i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  s.remove_prefix(n);
  return true;
}

inline bool eat(std::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace times_detail

/// Parses a TIME; nullopt if it is neither form. Accepted absolute forms:
/// `2026-03-01`, `2026-03-01T12:00`, `2026-03-01 12:00:30`, `2026-03-01T12:00:30.25Z`,
/// `…+02:00`, `…-0500`, `…+02`.
inline std::optional<TimeArg> parseTimeArg(std::string_view s) {
  using namespace std::chrono;
  using times_detail::digits;
  using times_detail::eat;
  if (eat(s, '+')) {
    // Plain decimal seconds only: no sign, exponent, "inf".
    if (s.empty() || s.find_first_not_of("0123456789.") != std::string_view::npos ||
        s.find('.') != s.rfind('.') || s == ".") {
      return std::nullopt;
    }
    const double secs = std::stod(std::string(s));
    if (secs > 1e11) return std::nullopt;  // ~3000 years: a typo, not a schedule
    return TimeArg{std::nullopt, microseconds(static_cast<std::int64_t>(secs * 1e6 + 0.5))};
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(s, 4, y) || !eat(s, '-') || !digits(s, 2, mo) || !eat(s, '-') || !digits(s, 2, d)) return std::nullopt;
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)), day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  microseconds frac{0};
  if (eat(s, 'T') || eat(s, 't') || eat(s, ' ')) {
    if (!digits(s, 2, h) || !eat(s, ':') || !digits(s, 2, mi)) return std::nullopt;
    if (eat(s, ':')) {
      if (!digits(s, 2, sec)) return std::nullopt;
      if (eat(s, '.') || eat(s, ',')) {
        std::int64_t scale = 100'000, us = 0;
        int n = 0;
        while (!s.empty() && s.front() >= '0' && s.front() <= '9') {
          us += (s.front() - '0') * scale;  // digits past the microsecond are dropped
          scale /= 10;
          s.remove_prefix(1);
          ++n;
        }
        if (n == 0) return std::nullopt;
        frac = microseconds(us);
      }
    }
    if (h > 23 || mi > 59 || sec > 59) return std::nullopt;
  }
  minutes offset{0};
  if (eat(s, 'Z') || eat(s, 'z')) {
  } else if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    const int sign = s.front() == '-' ? -1 : 1;
    s.remove_prefix(1);
    int oh = 0, om = 0;
    if (!digits(s, 2, oh)) return std::nullopt;
    if (eat(s, ':')) {
      if (!digits(s, 2, om)) return std::nullopt;
    } else if (!s.empty() && !digits(s, 2, om)) {
      return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset = minutes(sign * (oh * 60 + om));
  }
  if (!s.empty()) return std::nullopt;
  const auto local = sys_days(ymd) + hours(h) + minutes(mi) + seconds(sec) + frac;
  return TimeArg{TimePoint(local - offset), std::nullopt};
}

/// "2026-03-01T12:00:30.250000Z" (JSON, machine-readable), or to the second with a space for
/// tables ("2026-03-01 12:00:30").
inline std::string formatTime(TimePoint t, bool precise = true) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<microseconds> tod{t - day};
  char buf[64];
  if (precise) {
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                  static_cast<int>(tod.seconds().count()), static_cast<long long>(tod.subseconds().count()));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                  static_cast<int>(tod.seconds().count()));
  }
  return buf;
}

}  // namespace hostq::cli
