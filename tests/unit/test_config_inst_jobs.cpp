// An inst-jobs delayed_jobs.yml: environment sections, `<<` merges, inst-jobs settings applied or
// accepted with a warning, misspelt keys refused with file and line, and periodic_jobs.
#include <gtest/gtest.h>

#include "hostq/config.hpp"
#include "hostq/error.hpp"
#include "support/scoped_env.hpp"

using namespace std::chrono_literals;
using hostq::parsePoolSettings;
using hostq::ValidationError;
using hostq::test::ScopedEnv;

namespace {

std::string errorOf(const std::string& yaml, const std::string& env = "production") {
  try {
    parsePoolSettings(yaml, "delayed_jobs.yml", env);
  } catch (const ValidationError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ValidationError for:\n" << yaml;
  return {};
}

const char* kSections = R"(
default: &default
  max_attempts: 3
  workers:
    - queue: base
production:
  <<: *default
  workers:
    - queue: prod
      workers: 4
test:
  queue: tq
  workers:
    - workers: 1
)";

}  // namespace

TEST(ConfigInstJobs, TheEnvironmentPicksTheSection) {
  ScopedEnv hostqEnv("HOSTQ_ENV", nullptr);
  ScopedEnv railsEnv("RAILS_ENV", nullptr);
  // Default: production, with its `<<` merge of the default section (own keys win).
  auto s = parsePoolSettings(kSections);
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_EQ(s.workers[0].config.queue, "prod");
  EXPECT_EQ(s.workers[0].config.workers, 4);
  EXPECT_EQ(s.server.default_max_attempts, 3);
  // Explicit.
  s = parsePoolSettings(kSections, "f", "test");
  EXPECT_EQ(s.workers.at(0).config.queue, "tq");
  EXPECT_EQ(s.server.default_max_attempts, 1);
  // RAILS_ENV, then HOSTQ_ENV over it.
  {
    ScopedEnv rails("RAILS_ENV", "test");
    EXPECT_EQ(parsePoolSettings(kSections).workers.at(0).config.queue, "tq");
    ScopedEnv hostq("HOSTQ_ENV", "production");
    EXPECT_EQ(parsePoolSettings(kSections).workers.at(0).config.queue, "prod");
  }
  // No section of that name: `default`.
  EXPECT_EQ(parsePoolSettings(kSections, "f", "staging").workers.at(0).config.queue, "base");
  // Sections, none for us, no default: said so, naming the sections.
  const auto msg = errorOf("development:\n  workers: [{}]\ntest:\n  workers: [{}]\n", "staging");
  EXPECT_NE(msg.find("delayed_jobs.yml:1: (document): no section for environment \"staging\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("development, test"), std::string::npos) << msg;
  // A plain file (no sections) still loads as before.
  EXPECT_EQ(parsePoolSettings("queue: q\nworkers: [{}]\n").workers.at(0).config.queue, "q");
}

TEST(ConfigInstJobs, InstJobsSettingsAreAppliedNotGroupingKeys) {
  auto s = parsePoolSettings(R"(
max_attempts: 5
fetch_batch_size: 7
worker_max_job_count: 20
parent_process:
  server_address: /run/app/jobs.sock
  prefetched_jobs_timeout: 45
workers:
  - queue: q
)");
  EXPECT_EQ(s.server.default_max_attempts, 5);
  EXPECT_EQ(s.server.fetch_batch_size, 7);
  EXPECT_EQ(s.server.socket_path, "/run/app/jobs.sock");
  EXPECT_EQ(s.server.prefetched_jobs_timeout, 45s);
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_EQ(s.workers[0].max_job_count, 20);
  EXPECT_TRUE(s.workers[0].config.extra.empty());  // max_attempts is not a worker extra
  EXPECT_TRUE(s.warnings.empty());
  // server: wins over the inst-jobs spelling, wherever it stands in the file.
  EXPECT_EQ(parsePoolSettings("server: {default_max_attempts: 2}\nmax_attempts: 5\n").server.default_max_attempts, 2);
  // in_process: workers reserve for themselves.
  s = parsePoolSettings("work_queue: in_process\nworkers: [{}, {transport: socket}]\n");
  EXPECT_EQ(s.workers[0].transport, hostq::Transport::Direct);
  EXPECT_EQ(s.workers[1].transport, hostq::Transport::Socket);
  EXPECT_EQ(parsePoolSettings("disable_abandoned_job_cleanup: true\n").server.host_timeout, 0ms);
}

TEST(ConfigInstJobs, SettingsWithoutAnEquivalentWarnOnceEach) {
  auto s = parsePoolSettings(R"(sleep_delay: 2.0
worker_max_memory_usage: 1000000
parent_process:
  server_address: tmp
  client_timeout: 10
workers:
  - queue: q
    sleep_delay_stagger: 1
)", "dj.yml");
  ASSERT_EQ(s.warnings.size(), 5u);
  EXPECT_EQ(s.warnings[0].rfind("dj.yml:1: sleep_delay: ignored: ", 0), 0u) << s.warnings[0];
  EXPECT_EQ(s.warnings[1].rfind("dj.yml:2: worker_max_memory_usage: ignored: ", 0), 0u) << s.warnings[1];
  EXPECT_EQ(s.warnings[2].rfind("dj.yml:4: parent_process.server_address: ignored: ", 0), 0u) << s.warnings[2];
  EXPECT_EQ(s.warnings[3].rfind("dj.yml:5: parent_process.client_timeout: ignored: ", 0), 0u) << s.warnings[3];
  EXPECT_EQ(s.warnings[4].rfind("dj.yml:8: workers[0].sleep_delay_stagger: ignored: ", 0), 0u) << s.warnings[4];
  for (const auto& w : s.warnings) EXPECT_EQ(w.find('\n'), std::string::npos) << w;
  EXPECT_TRUE(s.workers.at(0).config.extra.empty());
}

TEST(ConfigInstJobs, AMisspeltKnownKeyIsAnErrorWithFileAndLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"queue: q\nmax_attemps: 5\n", "delayed_jobs.yml:2: max_attemps: unknown setting (did you mean \"max_attempts\"?)"},
      {"workers:\n  - queu: q\n", "delayed_jobs.yml:2: workers[0].queu: unknown setting (did you mean \"queue\"?)"},
      {"workers:\n  - queue: q\n    min_prority: 1\n", "workers[0].min_prority: unknown setting (did you mean \"min_priority\"?)"},
      {"sleep_dalay: 1\n", "sleep_dalay: unknown setting (did you mean \"sleep_delay\"?)"},
      {"parent_process:\n  server_adress: /x\n", "delayed_jobs.yml:2: parent_process.server_adress: unknown setting (did you mean \"server_address\"?)"},
      {"parent_process:\n  whatever: 1\n", "parent_process.whatever: unknown setting"},
      {"server:\n  host_timout: 5\n", "server.host_timout: unknown setting (did you mean \"host_timeout\"?)"},
      {"workers:\n  - max_attempts: 3\n", "workers[0].max_attempts: is a pool-wide setting"},
      {"work_queue: threads\n", "work_queue: must be parent_process or in_process"},
      {"workers: &w\n  - <<: *w\n", "delayed_jobs.yml:2: workers[0].<<: merge keys nested too deep"},
      {"workers:\n  - <<: 5\n", "workers[0].<<: a merge key takes a mapping"},
  };
  for (const auto& [yaml, expected] : cases) {
    const auto msg = errorOf(yaml);
    EXPECT_NE(msg.find(expected), std::string::npos) << yaml << "\n" << msg;
  }
  // Extras far from every known key are still extras.
  auto s = parsePoolSettings("region: eu\nshard: 1\nworkers: [{}]\n");
  EXPECT_EQ(s.workers.at(0).config.extra.size(), 2u);
}

TEST(ConfigInstJobs, PeriodicJobsAreReadAndChecked) {
  auto s = parsePoolSettings(R"(
periodic_jobs:
  - name: nightly
    cron: "0 3 * * *"
    tag: Report#nightly
  - name: ping
    cron: "*/30 * * * * *"
    tag: Ping#run
    payload: p
    queue: ops
    priority: 0
    max_attempts: 3
)");
  ASSERT_EQ(s.server.periodic_jobs.size(), 2u);
  const auto& a = s.server.periodic_jobs[0];
  EXPECT_EQ(a.name, "nightly");
  EXPECT_EQ(a.queue, "queue");
  EXPECT_EQ(a.priority, 10);
  EXPECT_FALSE(a.max_attempts);
  const auto& b = s.server.periodic_jobs[1];
  EXPECT_EQ(b.cron, "*/30 * * * * *");
  EXPECT_EQ(b.payload, "p");
  EXPECT_EQ(b.queue, "ops");
  EXPECT_EQ(b.priority, 0);
  EXPECT_EQ(b.max_attempts, 3);
  EXPECT_TRUE(parsePoolSettings("disable_periodic_jobs: true\nperiodic_jobs: [{name: a, cron: '* * * * *', tag: t}]\n")
                  .server.periodic_jobs.empty());

  const std::pair<const char*, const char*> cases[] = {
      {"periodic_jobs:\n  - name: a\n    cron: '61 * * * *'\n    tag: t\n", "delayed_jobs.yml:3: periodic_jobs[0].cron: cron \"61 * * * *\": minute field"},
      {"periodic_jobs:\n  - name: a\n    tag: t\n", "periodic_jobs[0]: missing cron"},
      {"periodic_jobs:\n  - {name: a, cron: '* * * * *', tag: t}\n  - {name: a, cron: '* * * * *', tag: u}\n",
       "delayed_jobs.yml:3: periodic_jobs[1].name: duplicate periodic job name \"a\""},
      {"periodic_jobs:\n  - {name: a, cron: '* * * * *', tag: t, quue: q}\n", "periodic_jobs[0].quue: unknown key (did you mean \"queue\"?)"},
      {"periodic_jobs:\n  - {name: a, cron: '* * * * *', tag: t, priority: -1}\n", "periodic_jobs[0].priority: must be between 0 and 1000000"},
      {"periodic_jobs: {a: 1}\n", "periodic_jobs: must be a list"},
      {"workers:\n  - periodic_jobs: []\n", "workers[0].periodic_jobs: is a top-level setting"},
  };
  for (const auto& [yaml, expected] : cases) {
    const auto msg = errorOf(yaml);
    EXPECT_NE(msg.find(expected), std::string::npos) << yaml << "\n" << msg;
  }
}

TEST(ConfigInstJobs, TheExampleDelayedJobsYmlLoads) {
  const std::string path = std::string(HOSTQ_SOURCE_DIR) + "/examples/delayed_jobs.yml";
  auto prod = hostq::loadPoolSettings(path, "production");
  ASSERT_EQ(prod.workers.size(), 2u);
  EXPECT_EQ(prod.workers[0].config.workers, 8);
  EXPECT_EQ(prod.workers[1].config.queue, "mail");
  EXPECT_EQ(prod.workers[1].config.max_priority, 10);
  EXPECT_EQ(prod.workers[0].max_job_count, 20);  // worker_max_job_count, merged from the top
  EXPECT_EQ(prod.server.default_max_attempts, 5);
  EXPECT_EQ(prod.server.socket_path, "/tmp/hostq-example.sock");
  EXPECT_EQ(prod.server.periodic_jobs.size(), 2u);
  EXPECT_EQ(prod.warnings.size(), 4u);  // sleep_delay, sleep_delay_stagger, client_timeout, worker_max_memory_usage
  for (const auto& w : prod.warnings) EXPECT_NE(w.find("delayed_jobs.yml:"), std::string::npos) << w;
  auto dev = hostq::loadPoolSettings(path, "development");
  EXPECT_EQ(dev.server.default_max_attempts, 1);
  EXPECT_EQ(dev.workers.size(), 1u);
  EXPECT_TRUE(dev.server.periodic_jobs.empty());
}
