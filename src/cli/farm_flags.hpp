#pragma once
// Flags shared by `hostq pool`, `hostq server` and `hostq worker`: a YAML file, then flags that
// override it. Every setting of the file has a flag.
#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "cli/verbs.hpp"
#include "hostq/config.hpp"

namespace hostq::cli {

struct FarmFlags {
  std::string config_file;
  std::string environment;  ///< section of a delayed_jobs.yml made of environment sections
  // worker settings (applied to every worker entry; create one entry if the file has none)
  std::optional<int> workers;
  std::optional<std::string> queue;
  std::optional<int> min_priority;
  std::optional<int> max_priority;
  std::optional<std::string> transport;
  bool builtin_handlers = false;
  std::optional<std::int64_t> max_job_count;
  std::optional<int> worker_nice;
  std::optional<int> jobs_per_request;
  std::optional<std::string> memory_high_water;
  // server settings
  std::optional<int> fetch_batch_size;
  std::optional<int> max_batch;
  std::optional<std::string> flush_delay;
  std::optional<int> flush_batch;
  std::optional<std::string> poll_interval;
  std::optional<std::string> prefetched_jobs_timeout;
  std::optional<std::string> restart_grace;
  std::optional<std::string> reconnect_grace;
  std::optional<int> held_batches;
  std::optional<int> held_max_hosts;
  std::optional<std::string> batch_max_open;
  std::optional<std::string> host_timeout;
  std::optional<std::string> slow_exit_timeout;
  bool forced_latency = false;
  std::optional<int> max_workers;
  std::optional<std::string> idle_hook;
  std::optional<std::string> http_listen;
  bool delete_failed_jobs = false;
  std::optional<int> max_attempts;
  bool no_process_titles = false;
};

void addWorkerFlags(CLI::App& cmd, FarmFlags& f);
void addServerFlags(CLI::App& cmd, FarmFlags& f);
/// File (if any) + flags + common options → settings. Throws ValidationError on bad values.
PoolSettings buildSettings(const FarmFlags& f, const CommonOptions& common);

}  // namespace hostq::cli
