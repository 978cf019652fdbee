#pragma once
// `hostq hold` and `hostq unhold`: one verb body, the direction as a parameter.
//   hostq hold|unhold ID… | --tag T | --strand S | --queue Q
#include <cstdio>
#include <memory>
#include <vector>

#include "cli/selector_flags.hpp"
#include "cli/verbs.hpp"

namespace hostq::cli {

inline VerbMain holdVerb(CLI::App& cmd, const CommonOptions& common, bool hold) {
  auto ids = std::make_shared<std::vector<JobId>>();
  auto select = std::make_shared<SelectorFlags>();
  cmd.add_option("ID", *ids, "job ids");
  select->add(cmd);
  const char* done = hold ? "held" : "unheld";
  cmd.footer(std::string(hold ? "Only jobs not locked by a worker can be held (inst-jobs' hold!)."
                              : "An unheld job starts over: attempts 0, runnable now if its run_at has passed.") +
             " Ids and --tag/--strand/--queue\nnarrow the selection together (AND).\nPrints \"" + done +
             " N\"; given ids alone, exits 1 if fewer than all of them were " + done + ".");
  return [ids, select, &common, hold, done] {
    if (ids->empty() && !select->any()) throw UsageError("give job ids or --tag, --strand, --queue");
    auto client = common.client();
    const auto selector = select->selector(*ids);
    const int n = hold ? client.hold(selector) : client.unhold(selector);
    std::printf("%s %d\n", done, n);
    if (!select->any() && static_cast<std::size_t>(n) < ids->size()) {
      std::fprintf(stderr, "hostq %s: %zu of %zu jobs not %s (%s)\n", hold ? "hold" : "unhold", ids->size() - n,
                   ids->size(), done,
                   hold ? "no such job, already held, or locked by a worker" : "no such job, or not held");
      return 1;
    }
    return 0;
  };
}

}  // namespace hostq::cli
