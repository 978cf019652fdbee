// hostq requeue ID…: put failed jobs back in the queue.
#include <cstdio>

#include "cli/verbs.hpp"
#include "hostq/error.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto ids = std::make_shared<std::vector<JobId>>();
  cmd.add_option("ID", *ids, "failed job ids: the failed_jobs id or the original job's id")->required();
  cmd.footer(
      "Prints the new job's id for each ID, in order. An ID naming both a failed_jobs row and another row's\n"
      "original job id means the original job. Exits 1 if any ID could not be requeued (the others still are).");
  return [ids, &common] {
    auto client = common.client();
    int failures = 0;
    for (const JobId id : *ids) {
      try {
        std::printf("%lld\n", static_cast<long long>(client.requeue(id)));
      } catch (const ValidationError& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "hostq requeue: %lld: %s\n", static_cast<long long>(id), e.what());
        ++failures;
      }
    }
    return failures == 0 ? 0 : 1;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("requeue", "Requeue failed jobs", hostq::cli::setup)
