// hostq stats: the running server's counters, latencies and workers.
#include <cstdio>

#include "cli/server_query.hpp"
#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto json = std::make_shared<bool>(false);
  auto timeout = std::make_shared<double>(5.0);
  cmd.add_flag("--json", *json, "one JSON object (keys: workers[{name,pid,transport,state}], jobs_completed, db_statements, …)");
  cmd.add_option("--timeout", *timeout, "seconds to wait for the server");
  return [json, timeout, &common] {
    std::string err;
    auto s = queryStats(common.socketPath(), std::chrono::milliseconds(static_cast<long>(*timeout * 1000)), err);
    if (!s) {
      std::fprintf(stderr, "hostq: no server at %s: %s\n", common.socketPath().c_str(), err.c_str());
      return 1;
    }
    std::fputs(*json ? (*s + "\n").c_str() : prettyJson(*s).c_str(), stdout);
    return 0;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("stats", "Show the running server's stats", hostq::cli::setup)
