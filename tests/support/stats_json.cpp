#include "support/stats_json.hpp"

#include <algorithm>

#include "common/json.hpp"

namespace hostq::test {

std::optional<double> statNumber(const std::string& json, const std::string& path) {
  std::string pointer = "/" + path;
  std::replace(pointer.begin(), pointer.end(), '.', '/');
  return numberAt(parseJsonOrDiscard(json), pointer);
}

bool statFlag(const std::string& json, const std::string& key) { return flagAt(parseJsonOrDiscard(json), "/" + key); }

std::function<bool(const std::string&)> statIs(std::string path, double value) {
  return [path = std::move(path), value](const std::string& s) { return statNumber(s, path) == value; };
}

std::function<bool(const std::string&)> statAtLeast(std::string path, double value) {
  return [path = std::move(path), value](const std::string& s) { return statNumber(s, path).value_or(-1) >= value; };
}

std::vector<pid_t> statsWorkerPids(const std::string& json) {
  std::vector<pid_t> out;
  const Json stats = parseJsonOrDiscard(json);
  if (!stats.is_object() || !stats.contains("workers") || !stats.at("workers").is_array()) return out;
  for (const auto& w : stats.at("workers"))
    if (w.is_object() && w.contains("pid") && w.at("pid").is_number_integer()) out.push_back(w.at("pid").get<pid_t>());
  return out;
}

}  // namespace hostq::test
