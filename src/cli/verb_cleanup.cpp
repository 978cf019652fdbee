// hostq cleanup --failed-older-than DURATION
#include <cstdio>

#include "cli/verbs.hpp"
#include "hostq/error.hpp"
#include "pool/config_parse.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto olderThan = std::make_shared<std::string>();
  cmd.add_option("--failed-older-than", *olderThan, "DURATION: delete failed jobs that failed longer ago than this")
      ->required();
  cmd.footer(
      "inst-jobs' cleanup_old_jobs: deletes failed_jobs rows whose failed_at is older than DURATION (a number of\n"
      "seconds, or with a unit: 90s, 30m, 12h, 7d), in batches of 10,000. Prints \"deleted N\".\n"
      "Example (from cron):\n"
      "  hostq cleanup --failed-older-than 30d");
  return [olderThan, &common] {
    const auto d = config_detail::parseLongDuration(*olderThan);
    if (!d) throw UsageError("--failed-older-than: not a duration: " + *olderThan);
    std::printf("deleted %lld\n", static_cast<long long>(common.client().cleanupFailed(*d)));
    return 0;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("cleanup", "Delete old failed jobs", hostq::cli::setup)
