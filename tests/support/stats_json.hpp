#pragma once
// Reading the server's stats JSON (`hostq stats --json`, a StatsReply) in tests: parsed, never
// scanned for substrings.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hostq::test {

/// A number at a dotted path of the stats JSON ("db_statements_by_kind.reserve"); nullopt when
/// absent, not a number, or the text is not JSON.
std::optional<double> statNumber(const std::string& json, const std::string& path);
/// The top-level boolean `key` is true.
bool statFlag(const std::string& json, const std::string& key);
/// Stats predicates for ServerTest::waitStats.
std::function<bool(const std::string&)> statIs(std::string path, double value);
std::function<bool(const std::string&)> statAtLeast(std::string path, double value);
/// The pids in the "workers" array.
std::vector<pid_t> statsWorkerPids(const std::string& json);

}  // namespace hostq::test
