// hostq server: the host's work-queue server alone (workers connect from elsewhere).
#include "cli/farm_flags.hpp"
#include "common/log.hpp"
#include "server/server.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto flags = std::make_shared<FarmFlags>();
  cmd.add_option("--config", flags->config_file, "YAML file (its server: section and periodic_jobs:)")
      ->check(CLI::ExistingFile);
  cmd.add_option("--environment", flags->environment,
                 "section of a config made of environment sections (default: $HOSTQ_ENV, $RAILS_ENV, production)");
  addServerFlags(cmd, *flags);
  cmd.add_option("--max-attempts", flags->max_attempts, "default max attempts of jobs that have none");
  cmd.add_flag("--delete-failed-jobs", flags->delete_failed_jobs, "delete permanently failed jobs");
  cmd.footer("INT, TERM and QUIT all stop it gracefully: results flushed, prefetched jobs given back.");
  return [flags, &common] {
    log::init("server");
    const PoolSettings s = buildSettings(*flags, common);
    server::ServerOptions o;
    o.settings = s.server;
    o.database_url = s.database_url;
    o.schema = common.schema;
    return server::runServer(o);
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("server", "Run the host's work-queue server", hostq::cli::setup)
