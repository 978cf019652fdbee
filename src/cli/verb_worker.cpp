// hostq worker: one worker process (with the built-in handlers only: a real worker is a program
// that links libhostq and registers its own).
#include "cli/farm_flags.hpp"
#include "common/log.hpp"
#include "hostq/worker.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto flags = std::make_shared<FarmFlags>();
  addWorkerFlags(cmd, *flags);
  cmd.footer("May start before the server: it waits for it. QUIT finishes the current job then exits;\n"
             "TERM/INT abort it (rescheduled, counting an attempt).");
  return [flags, &common] {
    log::init("worker");
    const PoolSettings s = buildSettings(*flags, common);
    WorkerOptions o;
    o.settings = s.workers.front();
    o.socket_path = s.server.socket_path;
    o.database_url = s.database_url;
    o.hostname = s.server.hostname;
    o.schema = common.schema;
    o.default_max_attempts = s.server.default_max_attempts;
    o.keep_failed_jobs = s.server.keep_failed_jobs;
    if (o.settings.builtin_handlers) o.handlers.addBuiltins();
    Worker w(std::move(o));
    return w.run();
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("worker", "Run one worker", hostq::cli::setup)
