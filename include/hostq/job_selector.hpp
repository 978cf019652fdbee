#pragma once
// Which jobs a list, count, hold, unhold or destroy applies to, and the counts per group.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hostq/job.hpp"

namespace hostq {

/// Every part given must match (AND). An empty selector matches every job: Client's list and
/// counts accept it, its writes (hold, unhold, destroy) refuse it.
struct JobSelector {
  std::vector<JobId> ids{};  ///< failed_jobs ids where failed jobs are selected
  std::optional<std::string> tag{};
  std::optional<std::string> strand{};
  std::optional<std::string> queue{};
  bool empty() const { return ids.empty() && !tag && !strand && !queue; }
};

/// The key Client::counts groups by.
enum class CountBy { Queue, Tag, Strand };
/// "queue", "tag", "strand"; nullopt for anything else.
std::optional<CountBy> parseCountBy(std::string_view s) noexcept;

/// The jobs of one key (a queue, tag or strand) per state.
struct GroupCount {
  std::string key{};
  std::int64_t queued = 0, future = 0, blocked = 0, running = 0, prefetched = 0, held = 0, failed = 0;
};

}  // namespace hostq
