// The HTTP endpoint's pure parts: its address setting, histogram buckets, the health rules.
#include <gtest/gtest.h>

#include "hostq/config.hpp"
#include "hostq/error.hpp"
#include "http/listen_address.hpp"
#include "http/metrics.hpp"

namespace hostq::http {
namespace {

using namespace std::chrono_literals;

TEST(HttpListenAddress, HostAndPortOrBracketedIpv6) {
  auto a = parseListenAddress("127.0.0.1:9187");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9187);
  a = parseListenAddress("[::1]:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  EXPECT_EQ(parseListenAddress("localhost:65535")->port, 65535);
  for (const char* bad : {"", "9187", ":9187", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:80x", "::1:9187", "[::1:9187", "[]:80", "a b:80", "host/x:80"})
    EXPECT_FALSE(parseListenAddress(bad)) << bad;
}

TEST(HttpListenAddress, ConfigKeyIsChecked) {
  EXPECT_EQ(parsePoolSettings("server:\n  http_listen: 127.0.0.1:9187\n").server.http_listen, "127.0.0.1:9187");
  EXPECT_TRUE(parsePoolSettings("server:\n  socket_path: /tmp/x.sock\n").server.http_listen.empty());
  try {
    parsePoolSettings("server:\n  http_listen: 9187\n");
    FAIL() << "no error for a port without a host";
  } catch (const ValidationError& e) {
    EXPECT_NE(std::string(e.what()).find("server.http_listen"), std::string::npos) << e.what();
  }
}

TEST(HttpMetrics, CumulativeCountsNeverCountAValueBelowItsBound) {
  LatencyHistogram h;
  for (std::uint64_t v : {1, 5, 8, 9, 100, 1000, 1000, 50'000}) h.record(v);
  EXPECT_EQ(h.sum(), 1 + 5 + 8 + 9 + 100 + 1000 + 1000 + 50'000u);
  const auto c = cumulativeCounts(h, {0, 1, 7, 10, 1000, 2000, 1'000'000});
  EXPECT_EQ(c, (std::vector<std::uint64_t>{0, 1, 2, 4, 5, 7, 8}));
  // 1000 falls into a bucket reaching past 1000, so it is counted at 2000, not at 1000.
  EXPECT_TRUE(std::is_sorted(c.begin(), c.end()));
}

TEST(HttpHealth, RulesInOrder) {
  const auto now = std::chrono::steady_clock::now();
  DbProbe::State db;
  db.checked = true;
  db.reachable = true;
  db.last_ok = now - 1s;
  EXPECT_FALSE(evaluateHealth(nullptr, db, now, 5s).ok);
  server::StatsSnapshot snap;
  snap.database_up = true;
  snap.taken_at = now - 1s;
  EXPECT_TRUE(evaluateHealth(&snap, db, now, 5s).ok);
  snap.taken_at = now - 6s;
  EXPECT_NE(evaluateHealth(&snap, db, now, 5s).reason.find("has not published"), std::string::npos);
  snap.taken_at = now;
  db.reachable = false;
  db.error = "connection refused";
  const Health h = evaluateHealth(&snap, db, now, 5s);
  EXPECT_FALSE(h.ok);
  EXPECT_EQ(h.reason, "database unreachable: connection refused");
  db.reachable = true;
  db.last_ok = now - 7s;  // the last ping hangs
  EXPECT_NE(evaluateHealth(&snap, db, now, 5s).reason.find("has not answered a ping for 7000 ms"), std::string::npos);
  db.last_ok = now;
  snap.database_up = false;
  EXPECT_FALSE(evaluateHealth(&snap, db, now, 5s).ok);
}

TEST(HttpMetrics, QueueLabelsAreEscaped) {
  DbProbe::State db;
  db.have_counts = true;
  db.counts.push_back(QueueCount{"we\"ird\\q\nx", 3, 0, 0, 0, 0, 0, 0});
  const std::string text = renderMetrics(nullptr, db, std::chrono::steady_clock::now());
  EXPECT_NE(text.find(R"(hostq_jobs{queue="we\"ird\\q\nx",state="queued"} 3)"), std::string::npos) << text;
}

}  // namespace
}  // namespace hostq::http
