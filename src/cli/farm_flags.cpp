#include "cli/farm_flags.hpp"

#include <cstdio>

#include "hostq/error.hpp"
#include "http/listen_address.hpp"
#include "pool/config_parse.hpp"
#include "protocol/messages.hpp"

namespace hostq::cli {

void addWorkerFlags(CLI::App& cmd, FarmFlags& f) {
  cmd.add_option("--config", f.config_file, "YAML file (delayed_jobs.yml style)")->check(CLI::ExistingFile);
  cmd.add_option("--environment", f.environment,
                 "section of a config made of environment sections (default: $HOSTQ_ENV, $RAILS_ENV, production)");
  cmd.add_option("--workers", f.workers, "workers per worker config")->check(CLI::Range(1, 100000));
  cmd.add_option("--queue", f.queue, "queue to work");
  cmd.add_option("--min-priority", f.min_priority, "lowest priority number to take")->check(CLI::Range(0, 1000000));
  cmd.add_option("--max-priority", f.max_priority, "highest priority number to take")->check(CLI::Range(0, 1000000));
  cmd.add_option("--transport", f.transport, "shm | socket | direct")->check(CLI::IsMember({"shm", "socket", "direct"}));
  cmd.add_flag("--builtin-handlers", f.builtin_handlers,
               "register hostq.noop/sleep/fail/crash/append (never on by default)");
  cmd.add_option("--max-job-count", f.max_job_count, "a worker exits after this many jobs (0 = no limit)");
  cmd.add_option("--memory-high-water", f.memory_high_water, "a worker exits when its RSS passes this (bytes; k/M/G)");
  cmd.add_option("--worker-nice", f.worker_nice, "added to each worker's nice value (0-19; default 5: the server keeps the CPU first)")
      ->check(CLI::Range(0, 19));
  cmd.add_option("--jobs-per-request", f.jobs_per_request,
                 "most jobs a shared-memory worker takes per request while its jobs are short (1-256; default 256; 1 = one at a time)")
      ->check(CLI::Range(1, static_cast<int>(protocol::kMaxJobsPerReserve)));
  cmd.add_option("--max-attempts", f.max_attempts, "default max attempts of jobs that have none")->check(CLI::Range(1, 1000000));
  cmd.add_flag("--delete-failed-jobs", f.delete_failed_jobs, "delete permanently failed jobs instead of moving them to failed_jobs");
}

void addServerFlags(CLI::App& cmd, FarmFlags& f) {
  cmd.add_option("--fetch-batch-size", f.fetch_batch_size, "reserve this × workers per group (inst-jobs' fetch_batch_size)");
  cmd.add_option("--max-batch", f.max_batch, "upper bound of one reservation as the batch grows with the backlog");
  cmd.add_option("--flush-delay", f.flush_delay, "longest wait before results are written (e.g. 2ms)");
  cmd.add_option("--flush-batch", f.flush_batch, "results that force a flush");
  cmd.add_option("--poll-interval", f.poll_interval, "safety-net poll of the database (e.g. 1s)");
  cmd.add_option("--prefetched-jobs-timeout", f.prefetched_jobs_timeout, "prefetched jobs older than this go back (30s)");
  cmd.add_option("--restart-grace", f.restart_grace, "after a restart, wait this for workers to reclaim their jobs");
  cmd.add_option("--reconnect-grace", f.reconnect_grace, "a live worker that lost its connection keeps its jobs this long (5s)");
  cmd.add_option("--held-batches", f.held_batches, "held-lock batch connections (claims that write nothing); 0 = written locks (3)");
  cmd.add_option("--held-max-hosts", f.held_max_hosts,
                 "held-lock claims only while at most this many hosts are live, else written locks (4; 0 = always)");
  cmd.add_option("--batch-max-open", f.batch_max_open, "longest a held-lock batch stays open before its running jobs are promoted (200ms)");
  cmd.add_option("--host-timeout", f.host_timeout,
                 "DURATION: a host without a heartbeat this long is dead and its jobs are recovered (60s; 0 = never)");
  cmd.add_option("--slow-exit-timeout", f.slow_exit_timeout, "graceful-stop window before TERM, then KILL (20s)");
  cmd.add_flag("--forced-latency", f.forced_latency, "inst-jobs' idle-host latency for multi-host farms");
  cmd.add_option("--max-workers", f.max_workers, "shared-memory slots; more workers use the socket");
  cmd.add_option("--idle-hook", f.idle_hook, "shell command run when the host turns idle or busy ($HOSTQ_IDLE)");
  cmd.add_flag("--no-process-titles", f.no_process_titles, "leave process names alone");
  cmd.add_option("--http", f.http_listen,
                 "serve /metrics, /healthz, /api/stats and a dashboard on HOST:PORT (job stats: keep it on loopback "
                 "or a private network)");
}

namespace {
std::chrono::milliseconds duration(const std::optional<std::string>& s, const char* flag) {
  auto d = config_detail::parseDuration(*s);
  if (!d) throw ValidationError(std::string(flag) + ": not a duration: " + *s);
  return *d;
}
}  // namespace

PoolSettings buildSettings(const FarmFlags& f, const CommonOptions& common) {
  PoolSettings s = f.config_file.empty() ? PoolSettings{} : loadPoolSettings(f.config_file, f.environment);
  for (const auto& w : s.warnings) std::fprintf(stderr, "hostq: warning: %s\n", w.c_str());
  if (!common.database_url.empty() || s.database_url.empty()) s.database_url = common.databaseUrl();
  if (!common.socket.empty() || s.server.socket_path.empty()) s.server.socket_path = common.socketPath();
  if (!common.hostname.empty()) s.server.hostname = common.hostname;
  if (s.workers.empty()) s.workers.emplace_back();
  for (auto& w : s.workers) {
    if (f.workers) w.config.workers = *f.workers;
    if (f.queue) w.config.queue = *f.queue;
    if (f.min_priority) w.config.min_priority = *f.min_priority;
    if (f.max_priority) w.config.max_priority = *f.max_priority;
    if (f.transport) w.transport = *parseTransport(*f.transport);
    if (f.builtin_handlers) w.builtin_handlers = true;
    if (f.max_job_count) w.max_job_count = *f.max_job_count;
    if (f.worker_nice) w.nice = *f.worker_nice;
    if (f.jobs_per_request) w.jobs_per_request = *f.jobs_per_request;
    if (f.memory_high_water) {
      auto b = config_detail::parseByteSize(*f.memory_high_water);
      if (!b) throw ValidationError("--memory-high-water: not a size: " + *f.memory_high_water);
      w.memory_high_water = *b;
    }
    if (w.config.queue.empty()) throw ValidationError("--queue: queue name can't be blank");
    if (w.config.min_priority > w.config.max_priority)
      throw ValidationError("--min-priority is above --max-priority");
  }
  auto& v = s.server;
  if (f.fetch_batch_size) v.fetch_batch_size = *f.fetch_batch_size;
  if (f.max_batch) v.max_batch = *f.max_batch;
  if (f.flush_delay) v.flush_delay = duration(f.flush_delay, "--flush-delay");
  if (f.flush_batch) v.flush_batch = *f.flush_batch;
  if (f.poll_interval) v.poll_interval = duration(f.poll_interval, "--poll-interval");
  if (f.prefetched_jobs_timeout) v.prefetched_jobs_timeout = duration(f.prefetched_jobs_timeout, "--prefetched-jobs-timeout");
  if (f.restart_grace) v.restart_grace = duration(f.restart_grace, "--restart-grace");
  if (f.reconnect_grace) v.reconnect_grace = duration(f.reconnect_grace, "--reconnect-grace");
  if (f.held_batches) v.held_batches = *f.held_batches;
  if (f.held_max_hosts) v.held_max_hosts = *f.held_max_hosts;
  if (f.batch_max_open) v.batch_max_open = duration(f.batch_max_open, "--batch-max-open");
  if (f.host_timeout) v.host_timeout = duration(f.host_timeout, "--host-timeout");
  if (f.slow_exit_timeout) s.slow_exit_timeout = duration(f.slow_exit_timeout, "--slow-exit-timeout");
  if (f.forced_latency) v.forced_latency = true;
  if (f.max_workers) v.max_workers = *f.max_workers;
  if (f.idle_hook) v.idle_hook = *f.idle_hook;
  if (f.http_listen) {
    if (!http::parseListenAddress(*f.http_listen))
      throw ValidationError("--http: not HOST:PORT (e.g. 127.0.0.1:9187 or [::1]:9187): " + *f.http_listen);
    v.http_listen = *f.http_listen;
  }
  if (f.delete_failed_jobs) v.keep_failed_jobs = false;
  if (f.max_attempts) v.default_max_attempts = *f.max_attempts;
  if (f.no_process_titles) s.process_titles = false;
  if (v.fetch_batch_size < 1 || v.max_batch < 1 || v.flush_batch < 1 || v.max_workers < 0)
    throw ValidationError("batch sizes must be at least 1");
  if (v.held_batches < 0 || v.held_batches > 16) throw ValidationError("--held-batches: 0 to 16");
  if (v.held_max_hosts < 0) throw ValidationError("--held-max-hosts: 0 or more");
  if (v.batch_max_open.count() < 1) throw ValidationError("--batch-max-open: at least 1ms");
  return s;
}

}  // namespace hostq::cli
