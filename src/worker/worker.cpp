#include "hostq/worker.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/signal_pipe.hpp"
#include "worker/direct_source.hpp"
#include "worker/job_source.hpp"
#include "worker/server_source.hpp"

namespace hostq {

namespace {

std::string g_workerName;

std::int64_t residentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long size = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<std::int64_t>(resident) * ::sysconf(_SC_PAGESIZE) : 0;
}

TimePoint nowUtc() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

}  // namespace

const std::string& currentWorkerName() noexcept { return g_workerName; }

struct Worker::Impl {
  WorkerOptions options;
  std::string name;
  int interrupt_fd = -1;
  std::unique_ptr<worker::JobSource> source;
  std::atomic<bool> stop{false};
  std::atomic<JobId> running{0};
  /// TERM or INT received (the signal number), stored before the watcher reads `running`: a
  /// job the main thread took just before, and had not yet marked running, is aborted by the
  /// main thread itself (below), not run to its end.
  std::atomic<int> aborting{0};
  std::atomic<std::uint64_t> jobs_run{0};
  std::optional<SignalPipe> signals;  ///< read by `watcher`, outside signal context
  std::thread watcher;
  /// Failed jobs reported, their decision not back yet (main thread only).
  std::unordered_map<JobId, std::pair<Job, std::string>> awaiting;

  explicit Impl(WorkerOptions o) : options(std::move(o)) {
    name = resolveHostname(options.hostname) + ":" + std::to_string(::getpid());
    interrupt_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~Impl() {
    if (interrupt_fd >= 0) ::close(interrupt_fd);
  }

  void interrupt() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(interrupt_fd, &one, sizeof one);
  }

  void clearInterrupt() noexcept {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(interrupt_fd, &v, sizeof v);
  }

  void watchSignals() {
    for (;;) {
      const auto next = signals->next();
      if (!next || *next == SignalPipe::kWake) return;  // pipe failed, or our own shutdown
      const int sig = *next;
      if (sig == SIGQUIT) {
        spdlog::info("SIGQUIT: finishing the current job, then exiting");
        stop = true;
        interrupt();
        continue;
      }
      // TERM / INT: abort the running job (an attempt) and exit now. The interrupt comes first:
      // the source is the main thread's while it waits for a job, and this lets it go.
      stop = true;
      aborting = sig;
      interrupt();
      const JobId job = running.load();
      if (job != 0 && source->abortRunning(job, std::string("worker received ") + strsignal(sig))) {
        spdlog::warn("{}: aborted job {}", strsignal(sig), job);
        for (auto& h : options.hooks.on_exit) h(1);
        ::_exit(1);
      }
    }
  }

  /// Runs the job through hooks and handler; never throws.
  Outcome perform(const Job& job) {
    const auto* entry = options.handlers.find(job.tag);
    if (!entry) return Outcome::failure("no handler for " + job.tag);
    std::function<Outcome()> call = [&]() -> Outcome {
      try {
        return entry->handler(job);
      } catch (const std::exception& e) {
        return Outcome::failure(e.what());
      } catch (...) {
        return Outcome::failure("unknown exception");
      }
    };
    // First registered around hook is outermost: wrap from the last one inwards.
    auto& arounds = options.hooks.around_perform;
    for (auto it = arounds.rbegin(); it != arounds.rend(); ++it) {
      call = [hook = *it, next = std::move(call), &job]() -> Outcome {
        try {
          return hook(job, next);
        } catch (const std::exception& e) {
          return Outcome::failure(e.what());
        }
      };
    }
    try {
      for (auto& h : options.hooks.before_perform) h(job);
    } catch (const std::exception& e) {
      return Outcome::failure(std::string("before_perform hook: ") + e.what());
    }
    Outcome out = call();
    for (auto& h : options.hooks.after_perform) {
      try {
        h(job, out);
      } catch (const std::exception& e) {
        spdlog::warn("after_perform hook: {}", e.what());
      }
    }
    return out;
  }

  /// The result to report. Whether a failure is retried or permanent is not decided here: the
  /// fail statement decides (the row's attempts and max_attempts as they are then, its expiry)
  /// and its answer comes back through decide().
  JobResult judge(const Job& job, const Outcome& out) {
    if (out.ok()) return JobResult::completed(job.id);
    JobResult r = JobResult::failed(job.id, out.error());
    r.run_at = out.runAt();
    const auto* entry = options.handlers.find(job.tag);
    if (entry && entry->options.on_failure) {
      try {
        if (entry->options.on_failure(job, r.error) == FailureAction::DontCount) r.count_attempt = false;
      } catch (const std::exception& e) {
        spdlog::warn("on_failure of job {}: {}", job.id, e.what());
      }
    }
    for (auto& h : options.hooks.on_error) h(job, r.error);
    // Used only should the statement retry the job.
    if (!r.run_at && entry && entry->options.reschedule_at) {
      try {
        r.run_at = entry->options.reschedule_at(job, job.attempts + (r.count_attempt ? 1 : 0));
      } catch (const std::exception& e) {
        spdlog::warn("reschedule_at of job {}: {}", job.id, e.what());
      }
    }
    return r;
  }

  /// The database's decision on a failure this worker reported: the hooks follow it.
  void decide(const FailResult& d) {
    auto it = awaiting.find(d.id);
    if (it == awaiting.end()) return;  // a resend's second ack, or a job failed by the watcher
    const auto [job, error] = std::move(it->second);
    awaiting.erase(it);
    if (d.outcome == FailOutcome::Mismatch) {
      spdlog::warn("job {}: its failure was not written (the row was no longer locked by {})", job.id, name);
      return;
    }
    if (!d.permanent()) {
      for (auto& h : options.hooks.on_retry) h(job, error);
      return;
    }
    const auto* entry = options.handlers.find(job.tag);
    if (entry && entry->options.on_permanent_failure) {
      try {
        entry->options.on_permanent_failure(job, error);
      } catch (const std::exception& e) {
        spdlog::warn("on_permanent_failure of job {}: {}", job.id, e.what());
      }
    }
  }

  int run() {
    // Before any thread starts: threads inherit it (on Linux the nice value is per thread).
    if (options.settings.nice > 0) {
      errno = 0;
      if (::nice(options.settings.nice) == -1 && errno != 0)
        spdlog::warn("worker {}: nice({}) failed: {}", name, options.settings.nice, std::strerror(errno));
    }
    g_workerName = name;
    if (options.parent_pid > 0) {
      // Die with the pool (inst-jobs polls getppid(); the kernel tells us at once).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != options.parent_pid) return 0;
    }
    try {
      signals.emplace({SIGQUIT, SIGTERM, SIGINT}, /*nonblocking_read=*/false);
    } catch (const std::exception& e) {
      spdlog::critical("worker {}: {}", name, e.what());
      return 1;
    }
    ::signal(SIGPIPE, SIG_IGN);

    if (options.settings.transport == Transport::Direct) {
      StoreOptions so;
      so.schema = options.schema;
      so.default_max_attempts = options.default_max_attempts;
      so.keep_failed_jobs = options.keep_failed_jobs;
      so.application_name = "hostq worker " + name;
      source = std::make_unique<worker::DirectSource>(resolveDatabaseUrl(options.database_url), so,
                                                      name, options.settings.config, interrupt_fd);
    } else {
      source = std::make_unique<worker::ServerSource>(resolveSocketPath(options.socket_path), name,
                                                      options.settings.config,
                                                      options.settings.transport, interrupt_fd,
                                                      options.settings.jobs_per_request);
    }
    source->onDecision([this](const FailResult& d) { decide(d); });
    watcher = std::thread([this] { watchSignals(); });
    spdlog::info("worker {} started (queue {}, priorities {}..{}, transport {})", name,
                 options.settings.config.queue, options.settings.config.min_priority,
                 options.settings.config.max_priority, toString(options.settings.transport));
    int code = 0;
    try {
      loop();
    } catch (const std::exception& e) {
      spdlog::critical("worker {} failed: {}", name, e.what());
      code = 1;
    }
    try {
      source->close();
    } catch (const std::exception& e) {
      spdlog::warn("closing: {}", e.what());
    }
    if (!awaiting.empty())
      spdlog::warn("{} failure(s) without the server's decision at exit: their retry/permanent hooks did not run",
                   awaiting.size());
    for (auto& h : options.hooks.on_exit) h(code);
    signals->wake();
    watcher.join();
    signals.reset();
    spdlog::info("worker {} exiting after {} jobs", name, jobs_run.load());
    return code;
  }

  void loop() {
    const auto& s = options.settings;
    std::uint64_t turns = 0;
    Job job;  // reused: the source assigns into it, so its strings keep their buffers
    while (!stop) {
      // PR_SET_PDEATHSIG tells us at once; this syscall is only the fallback, so not every job.
      if (options.parent_pid > 0 && (turns++ & 255) == 0 && ::getppid() != options.parent_pid) break;
      const auto st = source->next(job);
      if (st == worker::NextStatus::Stop) break;
      if (st == worker::NextStatus::Interrupted) {
        clearInterrupt();
        if (options.parent_pid > 0 && ::getppid() != options.parent_pid) break;
        continue;
      }
      running = job.id;
      if (const int sig = aborting.load(); sig != 0) {
        // TERM came between next() and the line above: the watcher saw no job running. The job
        // was handed to us and marked begun, so it is an attempt, as one TERM aborts.
        source->report(JobResult::failed(job.id, std::string("worker received ") + strsignal(sig)));
        running = 0;
        break;
      }
      JobResult r;
      if (job.expires_at && *job.expires_at <= nowUtc()) {
        r = judge(job, Outcome::failure("job has expired"));
        r.permanent = true;  // not run at all; the statement fails it for good
      } else {
        r = judge(job, perform(job));
      }
      if (!r.success) awaiting.emplace(job.id, std::make_pair(job, r.error));
      source->report(r);
      running = 0;
      ++jobs_run;
      if (s.max_job_count > 0 && static_cast<std::int64_t>(jobs_run.load()) >= s.max_job_count) {
        spdlog::info("max_job_count {} reached", s.max_job_count);
        break;
      }
      if (s.memory_high_water > 0 && residentBytes() > s.memory_high_water) {
        spdlog::info("memory high-water mark passed ({} bytes)", residentBytes());
        break;
      }
    }
  }
};

Worker::Worker(WorkerOptions options) : m_impl(std::make_unique<Impl>(std::move(options))) {}
Worker::~Worker() = default;
int Worker::run() { return m_impl->run(); }
void Worker::requestStop() noexcept {
  m_impl->stop = true;
  m_impl->interrupt();
}
const std::string& Worker::name() const noexcept { return m_impl->name; }
std::uint64_t Worker::jobsRun() const noexcept { return m_impl->jobs_run.load(); }

}  // namespace hostq
