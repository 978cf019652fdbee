// hostq hold ID…
#include <cstdio>

#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto ids = std::make_shared<std::vector<JobId>>();
  cmd.add_option("ID", *ids, "job ids")->required();
  cmd.footer("Only jobs not locked by a worker can be held (inst-jobs' hold!).\nPrints \"held N\"; exits 1 if fewer than all of the given jobs were held.");
  return [ids, &common] {
    auto store = common.connectStore();
    const int n = store->hold(*ids);
    std::printf("held %d\n", n);
    if (static_cast<std::size_t>(n) < ids->size()) {
      std::fprintf(stderr, "hostq hold: %zu of %zu jobs not held (no such job, already held, or locked by a worker)\n", ids->size() - n, ids->size());
      return 1;
    }
    return 0;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("hold", "Hold jobs: workers skip them until unhold", hostq::cli::setup)
