// The command line's text formats: the JSON-lines reader/writer and TIME arguments.
#include <gtest/gtest.h>

#include "cli/json.hpp"
#include "cli/times.hpp"

using namespace std::chrono;
using hostq::cli::formatTime;
using hostq::cli::parseTimeArg;
namespace json = hostq::cli::json;

namespace {

std::string parseErrorOf(std::string_view text) {
  try {
    json::parseObject(text);
  } catch (const json::ParseError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ParseError for " << text;
  return {};
}

hostq::TimePoint utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0, int us = 0) {
  return hostq::TimePoint(sys_days(year_month_day{year(y), month(mo), day(d)}) + hours(h) + minutes(mi) + seconds(s) +
                          microseconds(us));
}

}  // namespace

TEST(JsonParse, ReadsAFlatObjectOfScalars) {
  auto o = json::parseObject(R"( {"tag": "a.b", "priority": 5, "ratio": -1.5e3, "on": true, "off": false, "x": null} )");
  ASSERT_EQ(o.size(), 6u);
  EXPECT_EQ(o[0].first, "tag");
  EXPECT_EQ(o[0].second.type, json::Value::Type::String);
  EXPECT_EQ(o[0].second.text, "a.b");
  EXPECT_EQ(o[1].second.asInteger(), 5);
  EXPECT_EQ(o[2].second.type, json::Value::Type::Number);
  EXPECT_EQ(o[2].second.text, "-1.5e3");
  EXPECT_FALSE(o[2].second.asInteger());
  EXPECT_TRUE(o[3].second.boolean);
  EXPECT_EQ(o[4].second.type, json::Value::Type::Bool);
  EXPECT_FALSE(o[4].second.boolean);
  EXPECT_TRUE(o[5].second.isNull());
  EXPECT_TRUE(json::parseObject("{}").empty());
}

TEST(JsonParse, DecodesEscapes) {
  auto o = json::parseObject(R"({"s": "q\"b\\s\/n\nt\tr\rb\bf\f", "u": "\u00e9\u20ac\ud83d\ude00", "raw": "é"})");
  EXPECT_EQ(o[0].second.text, "q\"b\\s/n\nt\tr\rb\bf\f");
  EXPECT_EQ(o[1].second.text, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(o[2].second.text, "é");
}

TEST(JsonParse, RefusesWhatIsNotOneFlatObject) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"", "column 1: expected '{'"},
      {"[1]", "expected '{'"},
      {R"({"a": {"b": 1}})", "column 7: nested objects and arrays are not supported"},
      {R"({"a": [1]})", "nested objects and arrays"},
      {R"({"a": 1} x)", "column 10: unexpected text after the object"},
      {R"({"a": 1,})", "expected a key"},
      {R"({a: 1})", "expected a key"},
      {R"({"a" 1})", "expected ':'"},
      {R"({"a": 1 "b": 2})", "expected ',' or '}'"},
      {R"({"a": 1, "a": 2})", "column 10: duplicate key \"a\""},
      {R"({"a": "x)", "unterminated string"},
      {"{\"a\": \"x\ty\"}", "control character"},
      {R"({"a": "\x"})", "invalid escape"},
      {R"({"a": "\u12"})", "four hex digits"},
      {R"({"a": "\ud83d"})", "high surrogate"},
      {R"({"a": "\ude00"})", "lone low surrogate"},
      {R"({"a": "\u0000"})", "\\u0000 is not allowed"},
      {R"({"a": 01})", "expected ',' or '}'"},
      {R"({"a": 1.})", "expected a digit after '.'"},
      {R"({"a": -})", "expected a digit"},
      {R"({"a": 1e})", "exponent"},
      {R"({"a": tru})", "expected a value"},
      {R"({"a": 'x'})", "expected a value"},
  };
  for (const auto& c : cases) {
    auto msg = parseErrorOf(c.text);
    EXPECT_NE(msg.find(c.expected), std::string::npos) << "input: " << c.text << "\nmessage: " << msg;
  }
}

TEST(JsonParse, IntegersThatDoNotFitAreNotIntegers) {
  auto o = json::parseObject(R"({"big": 99999999999999999999, "ok": -9223372036854775808})");
  EXPECT_FALSE(o[0].second.asInteger());
  EXPECT_EQ(o[1].second.asInteger(), INT64_MIN);
}

TEST(JsonWrite, WritesScalarsOptionalsAndEscapes) {
  const std::optional<std::string> none;
  const std::optional<std::int64_t> some = 7;
  auto s = json::ObjectWriter()
               .add("id", std::int64_t{42})
               .add("neg", -3)
               .add("ok", true)
               .add("ratio", 0.5)
               .add("nan", std::numeric_limits<double>::quiet_NaN())
               .add("text", "a\"b\\c\nd\x01")
               .add("str", std::string("é"))
               .add("none", none)
               .add("some", some)
               .addNull("null")
               .addRaw("nested", json::ObjectWriter().add("x", 1).str())
               .str();
  EXPECT_EQ(s,
            R"({"id":42,"neg":-3,"ok":true,"ratio":0.5,"nan":null,"text":"a\"b\\c\nd\u0001","str":"é",)"
            R"("none":null,"some":7,"null":null,"nested":{"x":1}})");
  EXPECT_EQ(json::ObjectWriter().str(), "{}");
}

TEST(JsonWrite, WhatIsWrittenParsesBack) {
  const std::string nasty = "tab\there \"quoted\" back\\slash \x7f\x1f end";
  auto o = json::parseObject(json::ObjectWriter().add("s", nasty).str());
  EXPECT_EQ(o[0].second.text, nasty);
}

TEST(CliTimeArg, RelativeSeconds) {
  EXPECT_EQ(parseTimeArg("+30")->in, seconds(30));
  EXPECT_EQ(parseTimeArg("+0")->in, microseconds(0));
  EXPECT_EQ(parseTimeArg("+1.5")->in, milliseconds(1500));
  EXPECT_FALSE(parseTimeArg("+30")->at);
  for (const char* bad : {"+", "+-1", "+1e3", "+1.2.3", "+.", "+abc", "30", "-30"}) {
    EXPECT_FALSE(parseTimeArg(bad)) << bad;
  }
}

TEST(CliTimeArg, IsoTimesAreUtcUnlessZoned) {
  EXPECT_EQ(parseTimeArg("2026-03-01")->at, utc(2026, 3, 1));
  EXPECT_EQ(parseTimeArg("2026-03-01T12:30")->at, utc(2026, 3, 1, 12, 30));
  EXPECT_EQ(parseTimeArg("2026-03-01 12:30:15")->at, utc(2026, 3, 1, 12, 30, 15));
  EXPECT_EQ(parseTimeArg("2026-03-01T12:30:15Z")->at, utc(2026, 3, 1, 12, 30, 15));
  EXPECT_EQ(parseTimeArg("2026-03-01T12:30:15.25Z")->at, utc(2026, 3, 1, 12, 30, 15, 250'000));
  EXPECT_EQ(parseTimeArg("2026-03-01T12:30:15.1234567")->at, utc(2026, 3, 1, 12, 30, 15, 123'456));
  EXPECT_EQ(parseTimeArg("2026-03-01T12:30:15+02:00")->at, utc(2026, 3, 1, 10, 30, 15));
  EXPECT_EQ(parseTimeArg("2026-03-01T12:30:15-0530")->at, utc(2026, 3, 1, 18, 0, 15));
  EXPECT_EQ(parseTimeArg("2026-03-01T01:00+02")->at, utc(2026, 2, 28, 23, 0));
  EXPECT_FALSE(parseTimeArg("2026-03-01")->in);
}

TEST(CliTimeArg, RefusesMalformedAndImpossibleTimes) {
  for (const char* bad : {"", "2026", "2026-3-1", "2026-02-30", "2026-13-01", "2026-03-01T24:00", "2026-03-01T12:60",
                          "2026-03-01T12:00:60", "2026-03-01T12", "2026-03-01T12:00:00.", "2026-03-01T12:00Zx",
                          "2026-03-01T12:00+2", "2026-03-01T12:00+25:00", "tomorrow", "2026-03-01T12:00:00 UTC"}) {
    EXPECT_FALSE(parseTimeArg(bad)) << bad;
  }
}

TEST(CliTimeArg, FormatsRoundTrip) {
  const auto t = utc(2026, 3, 1, 9, 5, 7, 42);
  EXPECT_EQ(formatTime(t), "2026-03-01T09:05:07.000042Z");
  EXPECT_EQ(formatTime(t, false), "2026-03-01 09:05:07");
  EXPECT_EQ(parseTimeArg(formatTime(t))->at, t);
}
