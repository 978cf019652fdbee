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

TEST(JsonParse, ReadsAFlatObjectOfScalarsInOrder) {
  auto o = json::parseObject(R"( {"tag": "a.b", "priority": 5, "ratio": -1.5e3, "on": true, "off": false, "x": null} )");
  ASSERT_EQ(o.size(), 6u);
  EXPECT_EQ(o.begin().key(), "tag");
  EXPECT_EQ(o["tag"], "a.b");
  EXPECT_TRUE(o["priority"].is_number_integer());
  EXPECT_EQ(o["priority"], 5);
  EXPECT_TRUE(o["ratio"].is_number_float());
  EXPECT_EQ(o["ratio"], -1500.0);
  EXPECT_EQ(o["on"], true);
  EXPECT_EQ(o["off"], false);
  EXPECT_TRUE(o["x"].is_null());
  EXPECT_TRUE(json::parseObject("{}").empty());
}

TEST(JsonParse, DecodesEscapes) {
  auto o = json::parseObject(R"({"s": "q\"b\\s\/n\nt\tr\rb\bf\f", "u": "\u00e9\u20ac\ud83d\ude00", "raw": "é"})");
  EXPECT_EQ(o["s"], "q\"b\\s/n\nt\tr\rb\bf\f");
  EXPECT_EQ(o["u"], "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(o["raw"], "é");
}

TEST(JsonParse, RefusesWhatIsNotOneFlatObject) {
  struct Case {
    const char* text;
    const char* expected;  ///< part of the message; nlohmann-json words the syntax errors
  };
  const Case cases[] = {
      {"", "column 1: "},
      {"[1]", "expected one JSON object"},
      {"5", "expected one JSON object"},
      {R"({"a": {"b": 1}})", "column 2: \"a\": nested objects and arrays are not supported"},
      {R"({"a": [1]})", "nested objects and arrays"},
      {R"({"a": 1} x)", "column 10: "},
      {R"({"a": 1,})", "syntax error"},
      {R"({a: 1})", "syntax error"},
      {R"({"a" 1})", "syntax error"},
      {R"({"a": 1 "b": 2})", "syntax error"},
      {R"({"a": 1, "a": 2})", "column 10: duplicate key \"a\""},
      {R"({"a": "x)", "syntax error"},
      {"{\"a\": \"x\ty\"}", "control character"},
      {R"({"a": "\x"})", "syntax error"},
      {R"({"a": "\u12"})", "syntax error"},
      {R"({"a": "\ud83d"})", "surrogate"},
      {R"({"a": "\ude00"})", "surrogate"},
      {R"({"a": "\u0000"})", "\\u0000 is not allowed"},
      {R"({"a": 01})", "syntax error"},
      {R"({"a": 1.})", "syntax error"},
      {R"({"a": -})", "syntax error"},
      {R"({"a": 1e})", "syntax error"},
      {R"({"a": tru})", "syntax error"},
      {R"({"a": 'x'})", "syntax error"},
  };
  for (const auto& c : cases) {
    auto msg = parseErrorOf(c.text);
    EXPECT_NE(msg.find(c.expected), std::string::npos) << "input: " << c.text << "\nmessage: " << msg;
  }
}

TEST(JsonParse, IntegersThatDoNotFitAreNotIntegers) {
  auto o = json::parseObject(R"({"big": 99999999999999999999, "ok": -9223372036854775808})");
  EXPECT_FALSE(o["big"].is_number_integer());
  EXPECT_EQ(o["ok"].get<std::int64_t>(), INT64_MIN);
}

TEST(JsonWrite, WritesScalarsOptionalsAndEscapesOnOneLine) {
  hostq::Json o = hostq::Json::object();
  o["id"] = std::int64_t{42};
  o["neg"] = -3;
  o["ok"] = true;
  o["ratio"] = 0.5;
  o["nan"] = std::numeric_limits<double>::quiet_NaN();
  o["text"] = "a\"b\\c\nd\x01";
  o["str"] = std::string("é");
  o["null"] = nullptr;
  o["nested"] = hostq::Json{{"x", 1}};
  EXPECT_EQ(hostq::dumpJson(o),
            R"({"id":42,"neg":-3,"ok":true,"ratio":0.5,"nan":null,"text":"a\"b\\c\nd\u0001","str":"é",)"
            R"("null":null,"nested":{"x":1}})");
  EXPECT_EQ(hostq::dumpJson(hostq::Json::object()), "{}");
}

TEST(JsonWrite, AnErrorMessageWithNewlinesAndControlBytesStaysOneValidLine) {
  // What a failed job's error or a bench run's error can hold: newlines, tabs, escape
  // sequences of a terminal, a NUL, and bytes that are not UTF-8.
  const std::string nasty = std::string("line one\nline two\r\n\ttab \x1b[31mred\x1b[0m \"q\" back\\slash ") +
                            std::string(1, '\0') + " \x7f\x1f end \xff\xfe";
  hostq::Json o = hostq::Json::object();
  o["error"] = nasty;
  const std::string line = hostq::dumpJson(o);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  for (unsigned char c : line) EXPECT_GE(c, 0x20u) << line;
  const auto back = hostq::Json::parse(line);  // throws when invalid
  const auto text = back.at("error").get<std::string>();
  // Everything but the invalid bytes comes back as it was; those become U+FFFD.
  EXPECT_EQ(text.substr(0, nasty.size() - 2), nasty.substr(0, nasty.size() - 2));
  EXPECT_NE(text.find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(JsonWrite, WhatIsWrittenParsesBack) {
  const std::string nasty = "tab\there \"quoted\" back\\slash \x7f\x1f end";
  hostq::Json o = hostq::Json::object();
  o["s"] = nasty;
  auto back = json::parseObject(hostq::dumpJson(o));
  EXPECT_EQ(back["s"], nasty);
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
