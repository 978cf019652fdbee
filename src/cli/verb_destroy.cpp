// hostq destroy ID… | --tag T | --strand S | --queue Q [--failed]
#include <cstdio>

#include "cli/selector_flags.hpp"
#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

struct Options {
  std::vector<JobId> ids;
  SelectorFlags select;
  bool failed = false;
};

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  auto o = std::make_shared<Options>();
  cmd.add_option("ID", o->ids, "job ids (failed_jobs ids with --failed)");
  o->select.add(cmd);
  cmd.add_flag("--failed", o->failed, "delete failed jobs (failed_jobs) instead");
  cmd.footer(
      "Deletes the selected jobs that nobody runs: queued, future, blocked and held ones; running and prefetched\n"
      "jobs are left alone. Deleting goes through the table's triggers, so the next job of a strand or singleton\n"
      "becomes runnable as if the deleted one had completed. Ids and --tag/--strand/--queue narrow the selection\n"
      "together (AND); at least one is required.\n"
      "Prints \"destroyed N\".\n"
      "Examples:\n"
      "  hostq destroy 12 13\n"
      "  hostq destroy --tag Report#build --queue reports\n"
      "  hostq destroy --failed --strand import/acme");
  return [o, &common] {
    if (o->ids.empty() && !o->select.any()) throw UsageError("give job ids or --tag, --strand, --queue");
    auto client = common.client();
    const auto selector = o->select.selector(o->ids);
    std::printf("destroyed %d\n", o->failed ? client.destroyFailed(selector) : client.destroy(selector));
    return 0;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("destroy", "Delete jobs that are not running (or failed jobs)", hostq::cli::setup)
