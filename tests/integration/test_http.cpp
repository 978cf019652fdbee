// The server's HTTP endpoint (`hostq pool --http`) from outside, as a farm operator's tools see
// it: a real pool, raw HTTP requests (good and bad), Prometheus' own checker when installed,
// PostgreSQL stopped and started under /healthz, and the dashboard rendered by a real browser.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include "common/json.hpp"
#include "pool/embedded_postgres.hpp"
#include "protocol/messages.hpp"
#include "support/http_client.hpp"
#include "support/reliability_farm.hpp"
#include "support/server_harness.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

using namespace rel;
using namespace std::chrono_literals;

/// The HTTP address the farm's server bound (it was given port 0), from `hostq stats --json`.
std::string httpAddress(const Farm& farm) {
  std::string address;
  waitUntil(
      [&] {
        const auto s = farm.stats();
        if (!s) return false;
        const Json stats = parseJsonOrDiscard(*s);
        if (!stats.is_object() || !stats.contains("http") || !stats.at("http").is_string()) return false;
        address = stats.at("http").get<std::string>();
        return true;
      },
      10s, kCostlyPoll);
  return address;
}

/// One parsed exposition: every sample by "name{labels}", checked against the text format's
/// rules on the way (a TYPE before a family's samples, numeric values, cumulative histogram
/// buckets ending in +Inf = _count).
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> family_of;  ///< series → its family (a histogram's for _bucket…)
  std::vector<std::string> problems;

  double at(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? std::nan("") : it->second;
  }
};

Exposition parseExposition(const std::string& text) {
  Exposition e;
  static const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$)");
  static const std::regex type_re(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::istringstream in(text);
  std::map<std::string, double> last_bucket;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (std::regex_match(line, m, type_re)) {
      if (e.types.count(m[1])) e.problems.push_back("second TYPE for " + m[1].str());
      e.types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, sample_re)) {
      e.problems.push_back("not a sample line: " + line);
      continue;
    }
    const std::string name = m[1], labels = m[2], value = m[3];
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (family.size() > s.size() && family.compare(family.size() - s.size(), s.size(), s) == 0 &&
          e.types.count(family.substr(0, family.size() - s.size())) &&
          e.types[family.substr(0, family.size() - s.size())] == "histogram")
        family = family.substr(0, family.size() - s.size());
    }
    if (!e.types.count(family)) e.problems.push_back("sample before its TYPE: " + line);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (end != value.c_str() + value.size()) e.problems.push_back("bad value: " + line);
    e.samples[name + labels] = v;
    e.family_of[name + labels] = family;
    if (name.size() > 7 && name.compare(name.size() - 7, 7, "_bucket") == 0) {
      if (last_bucket.count(family) && v < last_bucket[family]) e.problems.push_back("bucket goes down: " + line);
      last_bucket[family] = v;
      if (labels == "{le=\"+Inf\"}") last_bucket.erase(family);
    }
  }
  for (const auto& [family, type] : e.types) {
    if (type != "histogram") continue;
    if (e.at(family + "_bucket{le=\"+Inf\"}") != e.at(family + "_count"))
      e.problems.push_back(family + ": +Inf bucket differs from _count");
  }
  return e;
}

/// `promtool check metrics` on the text when Prometheus' tool is installed; "" when it accepts
/// it, its complaint otherwise; nullopt when there is no promtool.
std::optional<std::string> promtool(const std::string& text) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return std::nullopt;
  char path[] = "/tmp/hostq-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return std::string("mkstemp failed");
  (void)!::write(fd, text.data(), text.size());
  ::close(fd);
  const std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    const int status = ::pclose(p);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) out.clear();
    else if (out.empty()) out = "promtool failed";
  }
  ::unlink(path);
  return out;
}

class Http : public FarmTest {
 protected:
  FarmOptions httpFarm(const std::string& hostname, int workers) const {
    FarmOptions o = farmOptions(hostname, workers);
    o.extra = {"--http", "127.0.0.1:0"};
    return o;
  }
};

TEST_F(Http, ServesMetricsHealthStatsAndTheDashboardPage) {
  Farm farm(httpFarm("hs", 2));
  ASSERT_TRUE(farm.start()) << farm.log();
  const std::string http = httpAddress(farm);
  ASSERT_FALSE(http.empty()) << farm.log();

  auto health = httpRequest(http, "/healthz");
  ASSERT_TRUE(health) << farm.log();
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");

  // /api/stats is `hostq stats --json`: same keys, same server, same workers. It serves the
  // snapshot the server published last (every 250 ms), so the workers show up within that.
  std::optional<HttpReply> api;
  ASSERT_TRUE(waitUntil(
      [&] {
        api = httpRequest(http, "/api/stats");
        return api && api->status == 200 && statsWorkerPids(api->body).size() == 2;
      },
      5s, kCostlyPoll))
      << (api ? api->body : "no answer");
  EXPECT_EQ(api->status, 200);
  EXPECT_EQ(api->header("content-type"), "application/json");
  const Json from_http = Json::parse(api->body);
  const Json from_socket = Json::parse(*farm.stats());
  std::vector<std::string> http_keys, socket_keys;
  for (const auto& [k, v] : from_http.items()) http_keys.push_back(k);
  for (const auto& [k, v] : from_socket.items()) socket_keys.push_back(k);
  EXPECT_EQ(http_keys, socket_keys);
  EXPECT_EQ(from_http.at("server_pid"), from_socket.at("server_pid"));
  EXPECT_EQ(from_http.at("http"), http);
  EXPECT_EQ(statsWorkerPids(api->body).size(), 2u);

  auto metrics = httpRequest(http, "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const Exposition e = parseExposition(metrics->body);
  EXPECT_TRUE(e.problems.empty()) << ::testing::PrintToString(e.problems) << "\n" << metrics->body;
  if (auto complaint = promtool(metrics->body)) {
    EXPECT_EQ(*complaint, "") << metrics->body;
  }
  EXPECT_EQ(e.at("hostq_workers{transport=\"shm\"}"), 2);
  EXPECT_EQ(e.at("hostq_workers{transport=\"socket\"}"), 0);
  for (const char* family : {"hostq_jobs_completed_total", "hostq_jobs_failed_total", "hostq_db_statements_total",
                             "hostq_handoff_seconds", "hostq_enqueue_to_start_seconds", "hostq_reservation_batch_rows",
                             "hostq_workers"})
    EXPECT_TRUE(e.types.count(family)) << family << " missing\n" << metrics->body;
  EXPECT_EQ(e.types.at("hostq_handoff_seconds"), "histogram");
  EXPECT_EQ(e.at("hostq_handoff_seconds_bucket{le=\"1e-06\"}"), e.at("hostq_handoff_seconds_bucket{le=\"1e-06\"}"))
      << "bounds are written as plain decimals\n" << metrics->body;
  EXPECT_TRUE(e.samples.count("hostq_handoff_seconds_bucket{le=\"30\"}")) << metrics->body;
  EXPECT_EQ(e.types.at("hostq_jobs_completed_total"), "counter");
  for (const char* kind : {"reserve", "transfer", "complete", "fail", "unlock", "maintenance"})
    EXPECT_TRUE(e.samples.count(std::string("hostq_db_statements_total{kind=\"") + kind + "\"}")) << kind;

  // HEAD: the headers of a GET, no body.
  auto head = httpRequest(http, "/metrics", "HEAD");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  EXPECT_GT(std::stoul(head->header("content-length")), 0u);

  // The page: self-contained (nothing fetched from elsewhere), with its data endpoint.
  auto page = httpRequest(http, "/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page->header("content-security-policy").find("default-src 'none'"), std::string::npos);
  EXPECT_NE(page->body.find("<script>"), std::string::npos);
  EXPECT_NE(page->body.find("/api/dashboard"), std::string::npos);
  for (const char* external : {" src=", " href=", "@import", "url(http", "https://"})
    EXPECT_EQ(page->body.find(external), std::string::npos) << external;
  auto dash = httpRequest(http, "/api/dashboard");
  ASSERT_TRUE(dash);
  EXPECT_EQ(dash->status, 200);
  const Json d = Json::parse(dash->body);
  for (const char* key : {"stats", "health", "queues", "history", "histograms"}) EXPECT_TRUE(d.contains(key)) << key;
  EXPECT_EQ(d.at("health").at("ok"), true);
}

TEST_F(Http, MetricsParseAndTheirCountersGrowAcrossABurnDown) {
  Farm farm(httpFarm("hm", 3));
  ASSERT_TRUE(farm.start()) << farm.log();
  const std::string http = httpAddress(farm);
  ASSERT_FALSE(http.empty()) << farm.log();
  auto scrape = [&] {
    auto r = httpRequest(http, "/metrics");
    EXPECT_TRUE(r && r->status == 200);
    return parseExposition(r ? r->body : "");
  };
  const Exposition before = scrape();
  ASSERT_TRUE(before.problems.empty()) << ::testing::PrintToString(before.problems);

  constexpr int kJobs = 3000;
  enqueue("hostq.noop", "", kJobs);
  enqueue("hostq.fail", "on purpose", 20);
  // Parked for an hour in their own queue: hostq_jobs must show them once the counts refresh.
  enqueue("hostq.noop", "", 7, {"--queue", "later", "--run-at", "+3600"});
  ASSERT_TRUE(waitUntil([&] { return remaining() == 7; }, 60s, 100ms)) << remaining() << " left\n" << farm.log();
  ASSERT_TRUE(waitUntil(
      [&] {
        const auto e = scrape();
        return e.at("hostq_jobs_completed_total") >= before.at("hostq_jobs_completed_total") + kJobs &&
               e.at("hostq_jobs_failed_total") >= before.at("hostq_jobs_failed_total") + 20 &&
               e.at("hostq_jobs{queue=\"later\",state=\"future\"}") == 7;
      },
      30s, 200ms))
      << farm.log();
  const Exposition after = scrape();
  EXPECT_TRUE(after.problems.empty()) << ::testing::PrintToString(after.problems);
  if (auto complaint = promtool(httpRequest(http, "/metrics")->body)) {
    EXPECT_EQ(*complaint, "");
  }

  // Every counter and every histogram series only grows; the ones the burn-down drove grew.
  std::size_t checked = 0;
  for (const auto& [series, value] : before.samples) {
    const std::string& type = before.types.at(before.family_of.at(series));
    if (type != "counter" && type != "histogram") continue;
    EXPECT_GE(after.at(series), value) << series;
    ++checked;
  }
  EXPECT_GT(checked, 50u);
  EXPECT_GE(after.at("hostq_jobs_handed_out_total{transport=\"shm\"}"),
            before.at("hostq_jobs_handed_out_total{transport=\"shm\"}") + kJobs);
  // One hand-off per request, in one histogram or the other (sent ahead or not); a request of a
  // worker whose jobs are short takes up to kMaxJobsPerReserve jobs.
  auto requests = [](const Exposition& m) {
    return m.at("hostq_handoff_seconds_count") + m.at("hostq_handoff_ahead_seconds_count");
  };
  EXPECT_GE(requests(after), requests(before) + kJobs / protocol::kMaxJobsPerReserve);
  EXPECT_GE(after.at("hostq_jobs_handed_out_total{transport=\"shm\"}") -
                before.at("hostq_jobs_handed_out_total{transport=\"shm\"}"),
            requests(after) - requests(before));
  EXPECT_GT(after.at("hostq_handoff_ahead_seconds_count"), before.at("hostq_handoff_ahead_seconds_count"))
      << "no request was sent ahead";
  EXPECT_GE(after.at("hostq_enqueue_to_start_seconds_count"), before.at("hostq_enqueue_to_start_seconds_count") + kJobs);
  EXPECT_GT(after.at("hostq_handoff_seconds_sum"), before.at("hostq_handoff_seconds_sum"));
  // Held-lock batches (the default): claims and closes carry the burn-down.
  EXPECT_GT(after.at("hostq_db_statements_total{kind=\"claim\"}"), before.at("hostq_db_statements_total{kind=\"claim\"}"));
  EXPECT_GT(after.at("hostq_db_statements_total{kind=\"close\"}"), before.at("hostq_db_statements_total{kind=\"close\"}"));
  EXPECT_GT(after.at("hostq_held_batches_total"), before.at("hostq_held_batches_total"));
  EXPECT_GT(after.at("hostq_held_batch_open_seconds_count"), before.at("hostq_held_batch_open_seconds_count"));
  EXPECT_GT(after.at("hostq_reservation_batch_rows_count"), before.at("hostq_reservation_batch_rows_count"));
  EXPECT_EQ(after.at("hostq_jobs{queue=\"later\",state=\"queued\"}"), 0);
}

TEST_F(Http, RefusesBadInputAndKeepsServing) {
  Farm farm(httpFarm("hb", 1));
  ASSERT_TRUE(farm.start()) << farm.log();
  const std::string http = httpAddress(farm);
  ASSERT_FALSE(http.empty()) << farm.log();
  const pid_t server = *farm.serverPid();

  auto status = [&](const std::string& raw) {
    auto r = httpExchange(http, raw);
    return r ? r->status : -1;
  };
  EXPECT_EQ(status("GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 404);
  EXPECT_EQ(status("GET /metrics/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 404);
  auto post = httpExchange(http, "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->header("allow"), "GET, HEAD");
  EXPECT_EQ(status("DELETE / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 405);
  // Malformed: not a request line, a bad version, a header without a colon, bytes of nothing.
  EXPECT_EQ(status("HELLO\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/9.9\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nno colon here\r\n\r\n"), 400);
  EXPECT_EQ(status(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(200, '\xff') + "\r\n\r\n"),
            400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n"), 400);
  // Oversized: headers beyond 8 KiB, a body beyond 4 KiB (announced, or chunked).
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(16 * 1024, 'a') + "\r\n\r\n"), 431);
  EXPECT_EQ(status("GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"), 413);
  EXPECT_EQ(status("GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n" +
                   std::string(0x2000, 'x') + "\r\n0\r\n\r\n"),
            413);

  // Headers and a body each just within their limits: answered (405: nothing here takes a body).
  EXPECT_EQ(status("POST / HTTP/1.1\r\nHost: t\r\nX-Pad: " + std::string(7 * 1024, 'p') +
                   "\r\nContent-Length: 4000\r\nConnection: close\r\n\r\n" + std::string(4000, 'b')),
            405);

  // Keep-alive: two requests on one connection, both answered.
  {
    HttpConnection c(http);
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    const auto raw = c.readUntilClosed(10s);
    ASSERT_TRUE(raw);
    std::size_t answers = 0;
    for (std::size_t at = raw->find("HTTP/1.1 200"); at != std::string::npos; at = raw->find("HTTP/1.1 200", at + 1))
      ++answers;
    EXPECT_EQ(answers, 2u) << *raw;
  }

  // Slow and idle clients are closed by the server (10 s per request), both at once.
  {
    const auto t0 = std::chrono::steady_clock::now();
    HttpConnection idle(http), slow(http);
    ASSERT_TRUE(slow.send("GET /metrics HTTP/1.1\r\nHost: t\r\n"));  // never finishes its headers
    EXPECT_TRUE(idle.readUntilClosed(30s)) << "an idle connection was not closed";
    EXPECT_TRUE(slow.readUntilClosed(30s)) << "a slow request was not timed out";
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 9s);
  }

  // A bounded number of connections: the 65th gets a 503 while 64 sit idle.
  {
    std::vector<std::unique_ptr<HttpConnection>> held;
    for (int i = 0; i < 64; ++i) {
      held.push_back(std::make_unique<HttpConnection>(http));
      ASSERT_TRUE(held.back()->connected());
    }
    auto busy = httpRequest(http, "/healthz");
    ASSERT_TRUE(busy);
    EXPECT_EQ(busy->status, 503);
    EXPECT_EQ(busy->body, "too many connections\n");
  }
  // Slots come back as connections close.
  ASSERT_TRUE(waitUntil(
      [&] {
        auto r = httpRequest(http, "/healthz");
        return r && r->status == 200;
      },
      10s, kCostlyPoll));
  EXPECT_EQ(*farm.serverPid(), server) << "the server must survive\n" << farm.log();
  const auto s = farm.stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(static_cast<pid_t>(statNumber(*s, "server_pid").value_or(0)), server);
}

TEST_F(Http, HealthzFollowsPostgresStopAndStart) {
  std::unique_ptr<EmbeddedPostgres> pg;
  try {
    pg = EmbeddedPostgres::start();
  } catch (const std::exception& e) {
    GTEST_FAIL() << "cannot start a private PostgreSQL: " << e.what();
  }
  const std::string purl = pg->url(), pschema = "http_health";
  {
    const auto r = runHostq({"migrate", "--database-url", purl, "--schema", pschema});
    ASSERT_EQ(r.code, 0) << r.describe();
  }
  FarmOptions o = httpFarm("hh", 1);
  o.database_url = purl;
  o.schema = pschema;
  Farm farm(o);
  ASSERT_TRUE(farm.start()) << farm.log();
  const std::string http = httpAddress(farm);
  ASSERT_FALSE(http.empty()) << farm.log();
  auto healthz = [&] { return httpRequest(http, "/healthz"); };
  ASSERT_TRUE(waitUntil([&] { auto r = healthz(); return r && r->status == 200; }, 10s, kCostlyPoll)) << farm.log();
  const pid_t server = *farm.serverPid();

  const std::string pg_ctl = (::geteuid() == 0 ? "runuser -u postgres -- " : "") + EmbeddedPostgres::findBinDir() +
                             "/pg_ctl -D " + pg->dir() + "/data -l " + pg->dir() + "/server.log -w -t 60 ";
  ASSERT_EQ(std::system((pg_ctl + "-m fast stop >/dev/null 2>&1").c_str()), 0);
  std::optional<HttpReply> down;
  ASSERT_TRUE(waitUntil(
      [&] {
        down = healthz();
        return down && down->status == 503;
      },
      15s, kCostlyPoll))
      << (down ? down->body : "no answer") << "\n" << farm.log();
  EXPECT_NE(down->body.find("database"), std::string::npos) << down->body;
  // The rest of the endpoint keeps answering while the database is away.
  auto metrics = httpRequest(http, "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(parseExposition(metrics->body).at("hostq_database_reachable"), 0);

  ASSERT_EQ(std::system((pg_ctl + "start >/dev/null 2>&1").c_str()), 0);
  ASSERT_TRUE(waitUntil([&] { auto r = healthz(); return r && r->status == 200; }, 30s, kCostlyPoll)) << farm.log();
  EXPECT_EQ(*farm.serverPid(), server) << "the server must survive";
  farm.stop();
}

/// Debian's chromium, headless: the DOM after the page's scripts ran for a few virtual seconds.
std::optional<std::string> renderedDom(const std::string& url) {
  const std::string cmd = "chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                          "--virtual-time-budget=5000 --dump-dom '" + url + "' 2>/dev/null";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return std::nullopt;
  char buf[8192];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

TEST_F(Http, DashboardRendersWorkersAndCompletedJobsInABrowser) {
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) {
    // scripts/setup installs it; CI must not pass without having looked at the page.
    if (std::getenv("CI")) GTEST_FAIL() << "chromium is not installed (scripts/setup installs it)";
    GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  }
  Farm farm(httpFarm("hd", 3));
  ASSERT_TRUE(farm.start()) << farm.log();
  const std::string http = httpAddress(farm);
  ASSERT_FALSE(http.empty()) << farm.log();
  enqueue("hostq.noop", "", 500);
  ASSERT_TRUE(waitBurnDown(60s)) << farm.log();
  const auto stats = Json::parse(*farm.stats());
  ASSERT_TRUE(waitUntil(
      [&] {
        auto r = httpRequest(http, "/api/stats");
        return r && r->status == 200 && numberAt(Json::parse(r->body), "/jobs_completed").value_or(0) >= 500;
      },
      10s, kCostlyPoll));

  const auto dom = renderedDom("http://" + http + "/");
  ASSERT_TRUE(dom) << "chromium failed";
  // One row per worker of the pool, named as the server names them.
  std::size_t rows = 0;
  for (auto at = dom->find("<tr class=\"worker\">"); at != std::string::npos; at = dom->find("<tr class=\"worker\">", at + 1))
    ++rows;
  EXPECT_EQ(rows, 3u) << *dom;
  for (const auto& w : stats.at("workers"))
    EXPECT_NE(dom->find("<td class=\"name\">" + w.at("name").get<std::string>() + "</td>"), std::string::npos)
        << w.at("name") << "\n" << *dom;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*dom, m, std::regex(R"(id="completed">([0-9,]+)<)"))) << *dom;
  std::string digits = m[1];
  std::erase(digits, ',');
  EXPECT_GE(std::stoll(digits), 500) << m[0];
  EXPECT_NE(dom->find("class=\"good\">healthy<"), std::string::npos) << *dom;
}

}  // namespace
}  // namespace hostq::test
