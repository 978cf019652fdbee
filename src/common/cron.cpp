#include "common/cron.hpp"

#include <array>
#include <cctype>
#include <chrono>
#include <charconv>
#include <vector>

#include "hostq/error.hpp"

namespace hostq {
namespace {

namespace chr = std::chrono;

struct FieldSpec {
  const char* name;
  int min, max;
  const char* const* names;  // spelled values (index + min), or nullptr
};

constexpr const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", nullptr};
constexpr const char* kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", nullptr};

[[noreturn]] void bad(const FieldSpec& f, std::string_view text, const std::string& why) {
  throw ValidationError(std::string(f.name) + " field \"" + std::string(text) + "\": " + why);
}

int value(const FieldSpec& f, std::string_view text, std::string_view whole) {
  if (f.names != nullptr && text.size() == 3) {
    std::string lower;
    for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int i = 0; f.names[i] != nullptr; ++i) {
      if (lower == f.names[i]) return i + (f.names == kMonths ? 1 : 0);
    }
  }
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || p != text.data() + text.size()) bad(f, whole, "not a number: \"" + std::string(text) + "\"");
  // Day of week 7 is Sunday too.
  const int max = f.names == kDays ? 7 : f.max;
  if (v < f.min || v > max) {
    bad(f, whole, std::to_string(v) + " is outside " + std::to_string(f.min) + "-" + std::to_string(max));
  }
  return v;
}

/// Sets the bits of one field; returns false when the field is "*" (unrestricted).
template <std::size_t N>
bool parseField(const FieldSpec& f, std::string_view text, std::bitset<N>& bits) {
  bool any = text == "*" || text == "?";
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    std::string_view part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (part.empty()) bad(f, text, "empty list item");
    int step = 1;
    const bool stepped = part.find('/') != std::string_view::npos;
    if (auto slash = part.find('/'); stepped) {
      const std::string_view s = part.substr(slash + 1);
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
      if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || step < 1) bad(f, text, "bad step \"" + std::string(s) + "\"");
      part = part.substr(0, slash);
    }
    int lo = f.min, hi = f.max;
    if (part == "*" || part == "?") {
      // the whole range
    } else if (auto dash = part.find('-'); dash != std::string_view::npos) {
      lo = value(f, part.substr(0, dash), text);
      hi = value(f, part.substr(dash + 1), text);
      if (lo > hi) bad(f, text, "range runs backwards");
    } else {
      lo = value(f, part, text);
      // "A/N" runs from A to the end of the range in steps of N; a bare A is just A.
      hi = stepped ? f.max : lo;
    }
    for (int v = lo;; v += step) {
      bits.set(static_cast<std::size_t>(f.names == kDays && v == 7 ? 0 : v));
      if (hi - v < step) break;  // also keeps v + step from overflowing for a huge step
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return !any;
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

CronSchedule CronSchedule::parse(std::string_view expression) {
  std::string_view text = expression;
  if (text == "@yearly" || text == "@annually") text = "0 0 1 1 *";
  else if (text == "@monthly") text = "0 0 1 * *";
  else if (text == "@weekly") text = "0 0 * * 0";
  else if (text == "@daily" || text == "@midnight") text = "0 0 * * *";
  else if (text == "@hourly") text = "0 * * * *";
  auto fields = split(text);
  if (fields.size() != 5 && fields.size() != 6) {
    throw ValidationError("cron \"" + std::string(expression) + "\": expected 5 fields (minute hour day month weekday) "
                          "or 6 (seconds first), got " + std::to_string(fields.size()));
  }
  CronSchedule c;
  try {
    std::size_t i = 0;
    if (fields.size() == 6) {
      parseField({"second", 0, 59, nullptr}, fields[i++], c.m_second);
    } else {
      c.m_second.set(0);
    }
    parseField({"minute", 0, 59, nullptr}, fields[i++], c.m_minute);
    parseField({"hour", 0, 23, nullptr}, fields[i++], c.m_hour);
    c.m_domAny = !parseField({"day-of-month", 1, 31, nullptr}, fields[i++], c.m_dom);
    parseField({"month", 1, 12, kMonths}, fields[i++], c.m_month);
    c.m_dowAny = !parseField({"day-of-week", 0, 6, kDays}, fields[i++], c.m_dow);
  } catch (const ValidationError& e) {
    throw ValidationError("cron \"" + std::string(expression) + "\": " + e.what());
  }
  return c;
}

std::optional<TimePoint> CronSchedule::next(TimePoint after) const {
  // Walk forward field by field, jumping to the start of the next month / day / hour / minute
  // whenever a coarser field does not match: a few hundred steps at most per year searched.
  auto t = chr::floor<chr::seconds>(after) + chr::seconds(1);
  const auto limit = t + chr::days(5 * 366);
  while (t < limit) {
    const auto day = chr::floor<chr::days>(t);
    const chr::year_month_day ymd{day};
    if (!m_month.test(static_cast<unsigned>(ymd.month()))) {
      const auto firstOfNext = chr::year_month_day{ymd.year() / ymd.month() / 1} + chr::months(1);
      t = chr::sys_days(firstOfNext);
      continue;
    }
    const bool domOk = m_dom.test(static_cast<unsigned>(ymd.day()));
    const bool dowOk = m_dow.test(chr::weekday(day).c_encoding());
    const bool dayOk = m_domAny && m_dowAny ? true : m_domAny ? dowOk : m_dowAny ? domOk : (domOk || dowOk);
    if (!dayOk) {
      t = day + chr::days(1);
      continue;
    }
    const chr::hh_mm_ss hms{t - day};
    if (!m_hour.test(static_cast<std::size_t>(hms.hours().count()))) {
      t = chr::floor<chr::hours>(t) + chr::hours(1);
      continue;
    }
    if (!m_minute.test(static_cast<std::size_t>(hms.minutes().count()))) {
      t = chr::floor<chr::minutes>(t) + chr::minutes(1);
      continue;
    }
    if (!m_second.test(static_cast<std::size_t>(hms.seconds().count()))) {
      t += chr::seconds(1);
      continue;
    }
    return chr::time_point_cast<chr::microseconds>(t);
  }
  return std::nullopt;
}

}  // namespace hostq
