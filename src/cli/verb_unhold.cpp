// hostq unhold ID…
#include <cstdio>

#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto ids = std::make_shared<std::vector<JobId>>();
  cmd.add_option("ID", *ids, "job ids")->required();
  cmd.footer("An unheld job starts over: attempts 0, runnable now if its run_at has passed.\nPrints \"unheld N\"; exits 1 if fewer than all of the given jobs were unheld.");
  return [ids, &common] {
    auto store = common.connectStore();
    const int n = store->unhold(*ids);
    std::printf("unheld %d\n", n);
    if (static_cast<std::size_t>(n) < ids->size()) {
      std::fprintf(stderr, "hostq unhold: %zu of %zu jobs not unheld (no such job, or not held)\n", ids->size() - n, ids->size());
      return 1;
    }
    return 0;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("unhold", "Release held jobs", hostq::cli::setup)
