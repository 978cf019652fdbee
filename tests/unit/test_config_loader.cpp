// The YAML config: delayed_jobs.yml merging, extras as grouping keys, and every refusal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "hostq/config.hpp"
#include "hostq/error.hpp"
#include "support/scoped_env.hpp"

using namespace std::chrono_literals;
using hostq::parsePoolSettings;
using hostq::Transport;
using hostq::ValidationError;

namespace {

// The message of the ValidationError `yaml` raises; fails the test when it raises none.
std::string errorOf(const std::string& yaml, const std::string& origin = "test.yml") {
  try {
    parsePoolSettings(yaml, origin);
  } catch (const ValidationError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ValidationError for:\n" << yaml;
  return {};
}

using hostq::test::ScopedEnv;

}  // namespace

TEST(ConfigLoader, EmptyDocumentGivesDefaults) {
  auto s = parsePoolSettings("");
  EXPECT_TRUE(s.workers.empty());
  EXPECT_EQ(s.slow_exit_timeout, 20s);
  EXPECT_TRUE(s.process_titles);
  EXPECT_EQ(s.server.fetch_batch_size, 5);
  EXPECT_EQ(s.server.poll_interval, 1000ms);
}

TEST(ConfigLoader, TopLevelKeysAreMergedIntoEveryWorker) {
  auto s = parsePoolSettings(R"(
queue: mail
max_priority: 50
workers:
  - workers: 2
  - queue: reports
    max_priority: 10
)");
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].config.queue, "mail");
  EXPECT_EQ(s.workers[0].config.max_priority, 50);
  EXPECT_EQ(s.workers[0].config.workers, 2);
  // The entry's own keys win over the top level.
  EXPECT_EQ(s.workers[1].config.queue, "reports");
  EXPECT_EQ(s.workers[1].config.max_priority, 10);
  EXPECT_EQ(s.workers[1].config.workers, 1);
}

TEST(ConfigLoader, BareListIsTheWorkersList) {
  auto s = parsePoolSettings("- queue: a\n- queue: b\n  workers: 3\n");
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].config.queue, "a");
  EXPECT_EQ(s.workers[1].config.workers, 3);
}

TEST(ConfigLoader, EmptyWorkerEntryTakesTheDefaults) {
  auto s = parsePoolSettings("queue: q\nworkers:\n  -\n  - {}\n");
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].config.queue, "q");
  EXPECT_EQ(s.workers[1].config.queue, "q");
}

TEST(ConfigLoader, WorkerKeysAreParsed) {
  auto s = parsePoolSettings(R"(
workers:
  - queue: q
    min_priority: 5
    max_priority: 20
    workers: 4
    transport: socket
    max_job_count: 100
    memory_high_water: 512M
    builtin_handlers: true
    nice: 0
    jobs_per_request: 1
  - transport: direct
    worker_max_job_count: 7
    worker_memory_high_water: 1024
)");
  ASSERT_EQ(s.workers.size(), 2u);
  const auto& w = s.workers[0];
  EXPECT_EQ(w.config.queue, "q");
  EXPECT_EQ(w.config.min_priority, 5);
  EXPECT_EQ(w.config.max_priority, 20);
  EXPECT_EQ(w.config.workers, 4);
  EXPECT_EQ(w.transport, Transport::Socket);
  EXPECT_EQ(w.max_job_count, 100);
  EXPECT_EQ(w.memory_high_water, 512LL << 20);
  EXPECT_TRUE(w.builtin_handlers);
  EXPECT_EQ(w.nice, 0);
  EXPECT_EQ(w.jobs_per_request, 1);
  EXPECT_TRUE(w.config.extra.empty());
  // inst-jobs spellings
  EXPECT_EQ(s.workers[1].transport, Transport::Direct);
  EXPECT_EQ(s.workers[1].max_job_count, 7);
  EXPECT_EQ(s.workers[1].memory_high_water, 1024);
  // Defaults
  EXPECT_EQ(s.workers[1].config.queue, "queue");
  EXPECT_EQ(s.workers[1].config.min_priority, hostq::kMinPriority);
  EXPECT_EQ(s.workers[1].config.max_priority, hostq::kMaxPriority);
  EXPECT_FALSE(s.workers[1].builtin_handlers);
  EXPECT_EQ(s.workers[1].nice, 5);
  EXPECT_EQ(s.workers[1].jobs_per_request, 256);
}

TEST(ConfigLoader, ExtraKeysPassThroughAndTakePartInGrouping) {
  auto s = parsePoolSettings(R"(
region: eu
workers:
  - shard: 1
  - shard: "1"
  - shard: 2
    region: us
  - {}
)");
  ASSERT_EQ(s.workers.size(), 4u);
  EXPECT_EQ(s.workers[0].config.extra, (std::map<std::string, std::string>{{"region", "eu"}, {"shard", "1"}}));
  // Extras compare as text: 1 and "1" are the same group.
  EXPECT_EQ(s.workers[0].config, s.workers[1].config);
  EXPECT_EQ(s.workers[2].config.extra, (std::map<std::string, std::string>{{"region", "us"}, {"shard", "2"}}));
  EXPECT_NE(s.workers[0].config, s.workers[2].config);
  EXPECT_NE(s.workers[0].config, s.workers[3].config);
}

TEST(ConfigLoader, TopLevelSettingsAndServerSection) {
  auto s = parsePoolSettings(R"(
database_url: postgresql:///jobs
slow_exit_timeout: 2.5
process_titles: false
server:
  socket_path: /run/hostq.sock
  hostname: box1
  fetch_batch_size: 7
  max_batch: 500
  prefetched_jobs_timeout: 45
  flush_delay: 5ms
  flush_batch: 250
  poll_interval: 0.5
  forced_latency: yes
  forced_latency_amount: 3s
  orphan_purge_interval: 5m
  max_workers: 64
  max_connections: 100
  max_frame_bytes: 1M
  read_timeout: 20s
  allowed_group: jobs
  keep_failed_jobs: false
  default_max_attempts: 3
  idle_hook: /usr/local/bin/idle
  restart_grace: 3s
)");
  EXPECT_EQ(s.database_url, "postgresql:///jobs");
  EXPECT_EQ(s.slow_exit_timeout, 2500ms);
  EXPECT_FALSE(s.process_titles);
  EXPECT_EQ(s.server.socket_path, "/run/hostq.sock");
  EXPECT_EQ(s.server.hostname, "box1");
  EXPECT_EQ(s.server.fetch_batch_size, 7);
  EXPECT_EQ(s.server.max_batch, 500);
  EXPECT_EQ(s.server.prefetched_jobs_timeout, 45s);
  EXPECT_EQ(s.server.flush_delay, 5ms);
  EXPECT_EQ(s.server.flush_batch, 250);
  EXPECT_EQ(s.server.poll_interval, 500ms);
  EXPECT_TRUE(s.server.forced_latency);
  EXPECT_EQ(s.server.forced_latency_amount, 3s);
  EXPECT_EQ(s.server.orphan_purge_interval, 5min);
  EXPECT_EQ(s.server.max_workers, 64);
  EXPECT_EQ(s.server.max_connections, 100);
  EXPECT_EQ(s.server.max_frame_bytes, 1u << 20);
  EXPECT_EQ(s.server.read_timeout, 20s);
  EXPECT_EQ(s.server.allowed_group, "jobs");
  EXPECT_FALSE(s.server.keep_failed_jobs);
  EXPECT_EQ(s.server.default_max_attempts, 3);
  EXPECT_EQ(s.server.idle_hook, "/usr/local/bin/idle");
  EXPECT_EQ(s.server.restart_grace, 3s);
  EXPECT_TRUE(s.workers.empty());
}

TEST(ConfigLoader, OrphanPurgeIntervalInSecondsMustBeWholeMinutes) {
  EXPECT_EQ(parsePoolSettings("server: {orphan_purge_interval: 900}").server.orphan_purge_interval, 15min);
  EXPECT_NE(errorOf("server: {orphan_purge_interval: 90}").find("whole number of minutes"), std::string::npos);
}

TEST(ConfigLoader, ErrorsNameTheFileTheLineAndTheKey) {
  auto msg = errorOf("workers:\n  - queue: a\n  - queue: b\n    min_priority: -1\n", "/etc/hostq.yml");
  EXPECT_EQ(msg, "/etc/hostq.yml:4: workers[1].min_priority: must be between 0 and 1000000 (got -1)");
}

TEST(ConfigLoader, ErrorsInTopLevelDefaultsNameTheEntryTheyBreak) {
  auto msg = errorOf("max_priority: 2000000\nworkers:\n  - {}\n");
  EXPECT_NE(msg.find("workers[0].max_priority (top-level default)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test.yml:1:"), std::string::npos) << msg;
}

TEST(ConfigLoader, RefusesBadWorkerValues) {
  struct Case {
    const char* yaml;
    const char* expected;
  };
  const Case cases[] = {
      {"- min_priority: -1", "workers[0].min_priority: must be between 0 and 1000000"},
      {"- max_priority: 1000001", "workers[0].max_priority: must be between 0 and 1000000"},
      {"- min_priority: abc", "workers[0].min_priority: must be a whole number"},
      {"- min_priority: 1.5", "workers[0].min_priority: must be a whole number"},
      {"- min_priority: 20\n  max_priority: 10", "workers[0]: min_priority 20 is greater than max_priority 10"},
      {"- workers: -1", "workers[0].workers: must be at least 1"},
      {"- workers: 0", "workers[0].workers: must be at least 1"},
      {"- max_job_count: -5", "workers[0].max_job_count: must be at least 0"},
      {"- memory_high_water: -1", "workers[0].memory_high_water: must be a size in bytes"},
      {"- memory_high_water: 1T", "workers[0].memory_high_water: must be a size in bytes"},
      {"- queue: ''", "workers[0].queue: must not be blank"},
      {"- queue: '  '", "workers[0].queue: must not be blank"},
      {"- queue:", "workers[0].queue: must not be blank"},
      {"- queue: [a, b]", "workers[0].queue: must be a single value"},
      {"- transport: pigeon", "workers[0].transport: must be shm, socket or direct"},
      {"- builtin_handlers: maybe", "workers[0].builtin_handlers: must be true or false"},
      {"- nice: 20", "workers[0].nice: must be between 0 and 19"},
      {"- nice: -1", "workers[0].nice: must be between 0 and 19"},
      {"- jobs_per_request: 0", "workers[0].jobs_per_request: must be between 1 and 256"},
      {"- jobs_per_request: 257", "workers[0].jobs_per_request: must be between 1 and 256"},
      {"- shard: [1, 2]", "workers[0].shard: extra worker keys must be single values"},
      {"- shard: {a: 1}", "workers[0].shard: extra worker keys must be single values"},
      {"- shard:", "workers[0].shard: extra worker keys must be single values"},
      {"- server: {}", "workers[0].server: is a top-level setting"},
      {"- database_url: x", "workers[0].database_url: is a top-level setting"},
      {"- queue: a\n  queue: b", "workers[0].queue: duplicate key"},
      {"- max_job_count: 1\n  worker_max_job_count: 2", "workers[0].worker_max_job_count: duplicate key"},
      {"- just a string", "workers[0]: must be a mapping"},
      {"workers: {queue: a}", "workers: must be a list"},
      {"shard: [1]\nworkers: [{}]", "workers[0].shard (top-level default): extra worker keys must be single values"},
  };
  for (const auto& c : cases) {
    auto msg = errorOf(c.yaml);
    EXPECT_NE(msg.find(c.expected), std::string::npos) << "yaml: " << c.yaml << "\nmessage: " << msg;
    EXPECT_EQ(msg.rfind("test.yml:", 0), 0u) << msg;
  }
}

TEST(ConfigLoader, RefusesBadServerAndTopLevelValues) {
  struct Case {
    const char* yaml;
    const char* expected;
  };
  const Case cases[] = {
      {"server: {fetch_batchsize: 5}", "server.fetch_batchsize: unknown setting"},
      {"server: {fetch_batch_size: 0}", "server.fetch_batch_size: must be at least 1"},
      {"server: {max_batch: -1}", "server.max_batch: must be at least 1"},
      {"server: {flush_batch: 0}", "server.flush_batch: must be at least 1"},
      {"server: {max_workers: -1}", "server.max_workers: must be at least 0"},
      {"server: {max_connections: 0}", "server.max_connections: must be at least 1"},
      {"server: {default_max_attempts: 0}", "server.default_max_attempts: must be at least 1"},
      {"server: {poll_interval: 0}", "server.poll_interval: must be greater than zero"},
      {"server: {read_timeout: 0s}", "server.read_timeout: must be greater than zero"},
      {"server: {prefetched_jobs_timeout: 0}", "server.prefetched_jobs_timeout: must be greater than zero"},
      {"server: {flush_delay: -1}", "server.flush_delay: must be a duration"},
      {"server: {flush_delay: 1h}", "server.flush_delay: must be a duration"},
      {"server: {restart_grace: -1s}", "server.restart_grace: must be a duration"},
      {"server: {forced_latency: sometimes}", "server.forced_latency: must be true or false"},
      {"server: {max_frame_bytes: 10}", "server.max_frame_bytes: must be between 4k and 4G"},
      {"server: {max_frame_bytes: 5G}", "server.max_frame_bytes: must be between 4k and 4G"},
      {"server: {socket_path: [a]}", "server.socket_path: must be a single value"},
      {"server: [1, 2]", "server: must be a mapping"},
      {"server: {hostname: a, hostname: b}", "server.hostname: duplicate key"},
      {"slow_exit_timeout: soon", "slow_exit_timeout: must be a duration"},
      {"process_titles: 3", "process_titles: must be true or false"},
      {"database_url: {a: 1}", "database_url: must be a single value"},
      {"just a string", "(document): must be a mapping"},
  };
  for (const auto& c : cases) {
    auto msg = errorOf(c.yaml);
    EXPECT_NE(msg.find(c.expected), std::string::npos) << "yaml: " << c.yaml << "\nmessage: " << msg;
  }
}

TEST(ConfigLoader, InvalidYamlIsAValidationErrorWithPosition) {
  auto msg = errorOf("workers:\n  - queue: [a\n");
  EXPECT_EQ(msg.rfind("test.yml:", 0), 0u) << msg;
  EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
}

TEST(ConfigLoader, LoadsAFileAndNamesItInErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("hostq-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto good = (dir / "good.yml").string();
  const auto bad = (dir / "bad.yml").string();
  std::ofstream(good) << "queue: files\nworkers:\n  - workers: 2\n";
  std::ofstream(bad) << "workers:\n  - workers: -2\n";
  auto s = hostq::loadPoolSettings(good);
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_EQ(s.workers[0].config.queue, "files");
  try {
    hostq::loadPoolSettings(bad);
    ADD_FAILURE() << "no error";
  } catch (const ValidationError& e) {
    EXPECT_EQ(std::string(e.what()), bad + ":2: workers[0].workers: must be at least 1 (got -2)");
  }
  try {
    hostq::loadPoolSettings((dir / "missing.yml").string());
    ADD_FAILURE() << "no error";
  } catch (const ValidationError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.yml: cannot read"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST(ConfigLoader, TheExampleFileLoads) {
  auto s = hostq::loadPoolSettings(HOSTQ_SOURCE_DIR "/examples/hostq.yml");
  EXPECT_FALSE(s.workers.empty());
  EXPECT_EQ(s.server.host_timeout, 60s);
  EXPECT_EQ(s.server.periodic_jobs.size(), 1u);
  EXPECT_TRUE(s.warnings.empty());
}

TEST(ConfigLoader, HeldLockBatchSettings) {
  const auto defaults = hostq::parsePoolSettings("workers: [{}]");
  EXPECT_EQ(defaults.server.held_batches, 3);
  EXPECT_EQ(defaults.server.batch_max_open, std::chrono::milliseconds(200));
  EXPECT_EQ(defaults.server.held_max_hosts, 4);
  const auto s = hostq::parsePoolSettings("server: {held_batches: 0, batch_max_open: 50ms, held_max_hosts: 0}");
  EXPECT_EQ(s.server.held_batches, 0);
  EXPECT_EQ(s.server.held_max_hosts, 0);
  EXPECT_NE(errorOf("server: {held_max_hosts: -1}").find("server.held_max_hosts"), std::string::npos);
  EXPECT_EQ(s.server.batch_max_open, std::chrono::milliseconds(50));
  EXPECT_NE(errorOf("server: {batch_max_open: 0}").find("server.batch_max_open"), std::string::npos);
  EXPECT_NE(errorOf("server: {held_batches: -1}").find("server.held_batches"), std::string::npos);
}

TEST(ConfigResolve, SocketPathPrecedence) {
  ScopedEnv sock("HOSTQ_SOCKET", "/env/hostq.sock");
  ScopedEnv run("XDG_RUNTIME_DIR", "/run/user/1000");
  EXPECT_EQ(hostq::resolveSocketPath("/explicit.sock"), "/explicit.sock");
  EXPECT_EQ(hostq::resolveSocketPath(""), "/env/hostq.sock");
  {
    ScopedEnv unset("HOSTQ_SOCKET", nullptr);
    EXPECT_EQ(hostq::resolveSocketPath(""), "/run/user/1000/hostq/hostq.sock");
    ScopedEnv unsetRun("XDG_RUNTIME_DIR", nullptr);
    EXPECT_EQ(hostq::resolveSocketPath(""), "/tmp/hostq-" + std::to_string(::getuid()) + "/hostq.sock");
  }
}

TEST(ConfigResolve, DatabaseUrlPrecedence) {
  ScopedEnv url("HOSTQ_DATABASE_URL", "postgresql:///env");
  EXPECT_EQ(hostq::resolveDatabaseUrl("postgresql:///flag"), "postgresql:///flag");
  EXPECT_EQ(hostq::resolveDatabaseUrl(""), "postgresql:///env");
  ScopedEnv unset("HOSTQ_DATABASE_URL", nullptr);
  EXPECT_EQ(hostq::resolveDatabaseUrl(""), "");
}

TEST(ConfigResolve, Hostname) {
  EXPECT_EQ(hostq::resolveHostname("box7"), "box7");
  EXPECT_FALSE(hostq::resolveHostname("").empty());
}
