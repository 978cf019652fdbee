#pragma once
// What a worker asks the server for. Requests are grouped by the whole config (by value), as in
// inst-jobs: queue, priority range and any extra keys; prefetched jobs never cross groups.
#include <compare>
#include <map>
#include <string>

#include "hostq/job.hpp"

namespace hostq {

struct WorkerConfig {
  std::string queue = "queue";
  int min_priority = kMinPriority;
  int max_priority = kMaxPriority;
  /// Number of workers of this config in the pool (sizes the prefetch: fetch_batch_size × workers).
  int workers = 1;
  /// Extra keys from the config file; they take part in grouping.
  std::map<std::string, std::string> extra;

  auto operator<=>(const WorkerConfig&) const = default;
  bool operator==(const WorkerConfig&) const = default;
};

}  // namespace hostq
