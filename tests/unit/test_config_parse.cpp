// Duration, size and integer notation of the config file.
#include <gtest/gtest.h>

#include "hostq/config.hpp"
#include "pool/config_parse.hpp"

using namespace std::chrono_literals;
using hostq::config_detail::parseByteSize;
using hostq::config_detail::parseDuration;
using hostq::config_detail::parseInteger;

TEST(ConfigParse, BareDurationsAreSeconds) {
  EXPECT_EQ(parseDuration("30"), 30'000ms);
  EXPECT_EQ(parseDuration("0"), 0ms);
  EXPECT_EQ(parseDuration("2.5"), 2'500ms);
  EXPECT_EQ(parseDuration("0.002"), 2ms);
  EXPECT_EQ(parseDuration(".5"), 500ms);
}

TEST(ConfigParse, DurationsTakeUnitSuffixes) {
  EXPECT_EQ(parseDuration("250ms"), 250ms);
  EXPECT_EQ(parseDuration("1.5ms"), 2ms);  // rounded to the millisecond
  EXPECT_EQ(parseDuration("30s"), 30'000ms);
  EXPECT_EQ(parseDuration("0.5s"), 500ms);
  EXPECT_EQ(parseDuration("15m"), 15min);
  EXPECT_EQ(parseDuration("1.5m"), 90s);
}

TEST(ConfigParse, DurationsRefuseAnythingElse) {
  for (const char* bad : {"", "-1", "-1s", "abc", "1h", "1 s", " 1", "1e3", "inf", "nan", "s", "ms", "1..2", "+1",
                          "0x10", "1sms"}) {
    EXPECT_FALSE(parseDuration(bad)) << bad;
  }
}

TEST(ConfigParse, LongDurationsAlsoTakeHoursAndDays) {
  using hostq::config_detail::parseLongDuration;
  EXPECT_EQ(parseLongDuration("90"), 90s);
  EXPECT_EQ(parseLongDuration("30m"), 30min);
  EXPECT_EQ(parseLongDuration("12h"), 12h);
  EXPECT_EQ(parseLongDuration("7d"), 7 * 24h);
  EXPECT_EQ(parseLongDuration("1.5d"), 36h);
  for (const char* bad : {"", "h", "d", "-1d", "1 d", "1hd", "1e3h", "inf"}) EXPECT_FALSE(parseLongDuration(bad)) << bad;
}

TEST(ConfigParse, SizesTakeBinarySuffixes) {
  EXPECT_EQ(parseByteSize("0"), 0);
  EXPECT_EQ(parseByteSize("4096"), 4096);
  EXPECT_EQ(parseByteSize("64k"), 64 * 1024);
  EXPECT_EQ(parseByteSize("64K"), 64 * 1024);
  EXPECT_EQ(parseByteSize("64kB"), 64 * 1024);
  EXPECT_EQ(parseByteSize("64KiB"), 64 * 1024);
  EXPECT_EQ(parseByteSize("512M"), 512LL << 20);
  EXPECT_EQ(parseByteSize("512MiB"), 512LL << 20);
  EXPECT_EQ(parseByteSize("2G"), 2LL << 30);
  EXPECT_EQ(parseByteSize("1.5G"), 3LL << 29);
}

TEST(ConfigParse, SizesRefuseAnythingElse) {
  for (const char* bad : {"", "-1", "-1k", "1.5", "k", "12T", "1 G", "10B", "iB", "1kiB2", "1e9", "ten"}) {
    EXPECT_FALSE(parseByteSize(bad)) << bad;
  }
}

TEST(ConfigParse, IntegersAreStrict) {
  EXPECT_EQ(parseInteger("0"), 0);
  EXPECT_EQ(parseInteger("-7"), -7);
  EXPECT_EQ(parseInteger("1000000"), 1'000'000);
  for (const char* bad : {"", "+1", "1.0", "1e3", "0x1", " 1", "1 ", "one", "99999999999999999999"}) {
    EXPECT_FALSE(parseInteger(bad)) << bad;
  }
}

TEST(ConfigParse, TransportNamesRoundTrip) {
  for (auto t : {hostq::Transport::Shm, hostq::Transport::Socket, hostq::Transport::Direct}) {
    EXPECT_EQ(hostq::parseTransport(hostq::toString(t)), t);
  }
  EXPECT_FALSE(hostq::parseTransport("SHM"));
  EXPECT_FALSE(hostq::parseTransport(""));
}
