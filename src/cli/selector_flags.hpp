#pragma once
// --tag, --strand, --queue: the selection flags of the admin verbs (jobs, hold, unhold, destroy).
// Every flag given narrows the selection (AND), and so do ids where a verb takes them.
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "hostq/job_selector.hpp"

namespace hostq::cli {

struct SelectorFlags {
  std::string tag, strand, queue;
  CLI::Option* tag_opt = nullptr;
  CLI::Option* strand_opt = nullptr;
  CLI::Option* queue_opt = nullptr;

  /// Declares the three flags on `cmd`; `what` completes "only jobs …" in their help.
  void add(CLI::App& cmd, const std::string& what = "") {
    tag_opt = cmd.add_option("--tag", tag, "only jobs with this tag (handler name)" + what);
    strand_opt = cmd.add_option("--strand", strand, "only jobs of this strand" + what);
    queue_opt = cmd.add_option("--queue", queue, "only jobs of this queue" + what);
  }
  bool any() const { return tag_opt->count() + strand_opt->count() + queue_opt->count() > 0; }
  JobSelector selector(std::vector<JobId> ids = {}) const {
    JobSelector s;
    s.ids = std::move(ids);
    if (tag_opt->count() > 0) s.tag = tag;
    if (strand_opt->count() > 0) s.strand = strand;
    if (queue_opt->count() > 0) s.queue = queue;
    return s;
  }
};

}  // namespace hostq::cli
