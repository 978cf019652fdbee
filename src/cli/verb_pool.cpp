// hostq pool: the server and N workers of every worker config, as one supervised process tree.
#include "cli/farm_flags.hpp"
#include "common/log.hpp"
#include "hostq/pool.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto flags = std::make_shared<FarmFlags>();
  addWorkerFlags(cmd, *flags);
  addServerFlags(cmd, *flags);
  cmd.footer("Runs in the foreground until signalled: QUIT = graceful (jobs finish), TERM/INT = fast.\n"
             "Exits 0 after a clean shutdown.");
  return [flags, &common] {
    log::init("pool");
    PoolOptions o;
    o.settings = buildSettings(*flags, common);
    o.schema = common.schema;
    return runPool(std::move(o));
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("pool", "Run the host's server and its workers, kept alive", hostq::cli::setup)
