// hostq unhold ID… | --tag T | --strand S | --queue Q
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
      "An unheld job starts over: attempts 0, runnable now if its run_at has passed. Ids and --tag/--strand/--queue\n"
      "narrow the selection together (AND).\n"
      "Prints \"unheld N\"; given ids alone, exits 1 if fewer than all of them were unheld.");
  return [ids, select, &common] {
    if (ids->empty() && !select->any()) throw UsageError("give job ids or --tag, --strand, --queue");
    if (select->any()) {
      store::AdminStore admin(common.databaseUrl(), common.storeOptions());
      std::printf("unheld %d\n", admin.unhold(select->selector(*ids)));
      return 0;
    }
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
