// hostq wait-idle: block until every worker is idle and no runnable job exists for their configs.
#include <poll.h>

#include <cstdio>

#include "cli/server_query.hpp"
#include "cli/verbs.hpp"
#include "common/json.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto timeout = std::make_shared<double>(60.0);
  cmd.add_option("--timeout", *timeout, "seconds before giving up (exit 1)");
  cmd.footer("Exit 0 once at least one worker is connected and the host is drained, 1 on timeout.");
  return [timeout, &common] {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(*timeout * 1000));
    std::string err;
    StatsClient client;
    while (Clock::now() < deadline) {
      auto s = client.query(common.socketPath(), std::chrono::milliseconds(2000), err);
      // No worker connected yet (a pool just started) is not "drained": the server would say
      // true for want of any worker config to check the queues of.
      if (s) {
        const Json stats = parseJsonOrDiscard(*s);
        if (flagAt(stats, "/drained") && stats.contains("workers") && stats.at("workers").is_array() &&
            !stats.at("workers").empty())
          return 0;
      }
      // Polling the server's state: each ask is one stats round trip (and one cheap query).
      ::poll(nullptr, 0, 50);
    }
    std::fprintf(stderr, "hostq: not idle after %.1f s%s%s\n", *timeout, err.empty() ? "" : ": ", err.c_str());
    return 1;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("wait-idle", "Wait until the host's workers are idle and their queues drained", hostq::cli::setup)
