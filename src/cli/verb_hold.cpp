// hostq hold ID… | --tag T | --strand S | --queue Q
#include <cstdio>

#include "cli/selector_flags.hpp"
#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto ids = std::make_shared<std::vector<JobId>>();
  auto select = std::make_shared<SelectorFlags>();
  cmd.add_option("ID", *ids, "job ids");
  select->add(cmd);
  cmd.footer(
      "Only jobs not locked by a worker can be held (inst-jobs' hold!). Ids and --tag/--strand/--queue narrow the\n"
      "selection together (AND).\n"
      "Prints \"held N\"; given ids alone, exits 1 if fewer than all of them were held.");
  return [ids, select, &common] {
    if (ids->empty() && !select->any()) throw UsageError("give job ids or --tag, --strand, --queue");
    if (select->any()) {
      store::AdminStore admin(common.databaseUrl(), common.storeOptions());
      std::printf("held %d\n", admin.hold(select->selector(*ids)));
      return 0;
    }
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
