// YAML config loader (delayed_jobs.yml semantics, see docs/cli.md and docs/operations.md) and
// the resolution of the settings every verb shares. Everything is validated here, at load time: a pool must not
// discover a typo in its third worker entry an hour after it started.
#include "hostq/config.hpp"

#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "common/cron.hpp"
#include "hostq/error.hpp"
#include "http/listen_address.hpp"
#include "pool/config_parse.hpp"
#include "protocol/messages.hpp"

namespace hostq {

static_assert(kMaxJobsPerRequest == protocol::kMaxJobsPerReserve, "the public limit is the protocol's");

const char* toString(Transport t) noexcept {
  switch (t) {
    case Transport::Shm:
      return "shm";
    case Transport::Socket:
      return "socket";
    case Transport::Direct:
      return "direct";
  }
  return "?";
}

std::optional<Transport> parseTransport(const std::string& s) noexcept {
  if (s == "shm") return Transport::Shm;
  if (s == "socket") return Transport::Socket;
  if (s == "direct") return Transport::Direct;
  return std::nullopt;
}

namespace config_detail {

namespace {

// A non-negative decimal with optional fraction. std::from_chars for double would accept
// "inf", "1e3" and hex floats; a config value should be plain.
std::optional<double> parsePlainDecimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  bool digits = false;
  bool dot = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      return std::nullopt;
    }
  }
  if (!digits) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::int64_t> parseInteger(std::string_view text) {
  if (text.empty() || text.front() == '+') return std::nullopt;
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  double scale = 1000.0;  // bare numbers are seconds, as in delayed_jobs.yml
  if (text.ends_with("ms")) {
    scale = 1.0;
    text.remove_suffix(2);
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
  } else if (text.ends_with("m")) {
    scale = 60'000.0;
    text.remove_suffix(1);
  }
  auto v = parsePlainDecimal(text);
  if (!v) return std::nullopt;
  const double ms = std::round(*v * scale);
  // Far beyond any sensible timeout, and keeps the cast below defined.
  if (ms > 1e15) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::optional<std::chrono::seconds> parseLongDuration(std::string_view text) {
  double scale = 0;
  if (text.ends_with("h")) scale = 3600.0;
  if (text.ends_with("d")) scale = 86400.0;
  if (scale == 0) {
    auto d = parseDuration(text);
    if (!d) return std::nullopt;
    return std::chrono::round<std::chrono::seconds>(*d);
  }
  text.remove_suffix(1);
  auto v = parsePlainDecimal(text);
  if (!v || *v * scale > 1e12) return std::nullopt;
  return std::chrono::seconds(static_cast<std::int64_t>(std::round(*v * scale)));
}

std::optional<std::int64_t> parseByteSize(std::string_view text) {
  auto multiple = [](char c) -> double {
    switch (c) {
      case 'k':
      case 'K':
        return 1024.0;
      case 'm':
      case 'M':
        return 1024.0 * 1024;
      case 'g':
      case 'G':
        return 1024.0 * 1024 * 1024;
      default:
        return 0;
    }
  };
  // "k", "kB" and "KiB" alike: people copy these from ps, top and systemd units.
  if (text.ends_with("iB")) {
    text.remove_suffix(2);
    if (text.empty() || multiple(text.back()) == 0) return std::nullopt;
  } else if (text.ends_with("B") && text.size() >= 2 && multiple(text[text.size() - 2]) != 0) {
    text.remove_suffix(1);
  }
  if (text.empty()) return std::nullopt;
  if (const double scale = multiple(text.back()); scale != 0) {
    text.remove_suffix(1);
    auto v = parsePlainDecimal(text);
    if (!v) return std::nullopt;
    const double bytes = std::round(*v * scale);
    if (bytes > 9e18) return std::nullopt;
    return static_cast<std::int64_t>(bytes);
  }
  auto v = parseInteger(text);
  if (!v || *v < 0) return std::nullopt;
  return v;
}

}  // namespace config_detail

namespace {

using config_detail::parseByteSize;
using config_detail::parseDuration;
using config_detail::parseInteger;

// Keys with a meaning at the top level only; inside a worker entry they are a mistake, not an
// extra grouping key.
const std::set<std::string, std::less<>> kTopLevelOnly = {"server", "database_url", "slow_exit_timeout",
                                                          "process_titles", "periodic_jobs"};

const std::set<std::string, std::less<>> kWorkerKeys = {
    "queue",         "min_priority",      "max_priority",             "workers",         "transport",
    "max_job_count", "memory_high_water", "worker_max_job_count", "worker_memory_high_water", "builtin_handlers",
    "nice",          "jobs_per_request"};

// inst-jobs settings (Delayed::Settings) that a delayed_jobs.yml may carry at its top level and
// that hostq applies to the pool (see Loader::instJobsSetting).
const std::set<std::string, std::less<>> kInstJobsApplied = {
    "max_attempts", "fetch_batch_size", "parent_process", "work_queue", "disable_periodic_jobs",
    "disable_abandoned_job_cleanup"};

// inst-jobs settings hostq has no equivalent for: accepted, with this reason in the warning.
const std::map<std::string, std::string, std::less<>> kInstJobsIgnored = {
    {"sleep_delay", "the server is woken by NOTIFY; server.poll_interval is its safety-net poll"},
    {"sleep_delay_stagger", "the server is woken by NOTIFY; server.poll_interval is its safety-net poll"},
    {"worker_max_memory_usage", "no hard memory limit; memory_high_water restarts a worker gracefully"},
    {"select_random_from_batch", "jobs are always reserved in one batched statement"},
    {"silence_periodic_log", "log levels come from HOSTQ_LOG_LEVEL"},
    {"stranded_run_at_grace_period", "fixed at 10 s"},
    {"kill_workers_on_exit", "the pool always stops its workers (QUIT, then TERM, then KILL)"},
    {"worker_health_check_type", "hosts are watched by hostq's own heartbeat (server.host_timeout)"},
    {"worker_health_check_config", "hosts are watched by hostq's own heartbeat (server.host_timeout)"},
    {"disable_automatic_orphan_unlocking", "jobs of dead workers are always recovered"},
    {"last_ditch_logfile", "logs go to stderr"},
    {"pool_procname_suffix", "process titles are fixed (process_titles turns them off)"},
    {"worker_procname_prefix", "process titles are fixed (process_titles turns them off)"},
    {"num_strands", "a Ruby callable; give --max-concurrent with --n-strand at enqueue"},
    {"default_job_options", "a Ruby callable; give the options at enqueue"},
    {"infer_strand_from_singleton", "not supported"},
    {"job_detailed_log_format", "log lines are fixed"},
    {"job_short_log_format", "log lines are fixed"},
    {"parent_process_client_timeout", "there is no per-job send timeout (jobs go over shared memory or a non-blocking socket)"},
};

// inst-jobs spellings of worker keys.
std::string canonicalWorkerKey(const std::string& key) {
  if (key == "worker_max_job_count") return "max_job_count";
  if (key == "worker_memory_high_water") return "memory_high_water";
  return key;
}

// Optimal string alignment distance (adjacent swaps count one): typos such as "queus".
std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

/// The known key `key` is probably a misspelling of, if any: within one edit for short keys, two
/// for long ones. Short extras ("az", "shard") are too close to everything to judge.
std::optional<std::string> misspeltKey(std::string_view key, std::initializer_list<const std::set<std::string, std::less<>>*> sets,
                                       const std::map<std::string, std::string, std::less<>>* more = nullptr) {
  const std::size_t allowed = key.size() >= 8 ? 2 : key.size() >= 4 ? 1 : 0;
  // Far longer than any known key: not a typo of one (and the distance table stays small).
  if (allowed == 0 || key.size() > 64) return std::nullopt;
  std::optional<std::string> best;
  std::size_t bestDistance = allowed + 1;
  auto consider = [&](const std::string& known) {
    const std::size_t dist = editDistance(key, known);
    if (dist > 0 && dist < bestDistance) {
      bestDistance = dist;
      best = known;
    }
  };
  for (const auto* set : sets) {
    for (const auto& known : *set) consider(known);
  }
  if (more != nullptr) {
    for (const auto& [known, why] : *more) consider(known);
  }
  return best;
}

/// Where a value came from, for error messages: "workers[2].queue" or, for a top-level default
/// merged into entry 2, "workers[2].queue (top-level default)".
struct Located {
  YAML::Node node;
  std::string where;
};

class Loader {
 public:
  Loader(std::string origin, std::string environment)
      : m_origin(std::move(origin)), m_environment(std::move(environment)) {}

  PoolSettings load(const YAML::Node& document) {
    PoolSettings out;
    const YAML::Node root = section(document);
    if (!root || root.IsNull()) return out;
    if (root.IsSequence()) {
      parseWorkers(root, {}, out);
      return out;
    }
    if (!root.IsMap()) fail(root, "(document)", "must be a mapping or a list of worker entries");

    std::map<std::string, Located> defaults;
    YAML::Node workers, server, periodic;
    bool inProcess = false, disablePeriodic = false;
    for (const auto& [key, value] : entries(root, "")) {
      if (key == "database_url") {
        out.database_url = string(value, key);
      } else if (key == "slow_exit_timeout") {
        out.slow_exit_timeout = duration(value, key);
      } else if (key == "process_titles") {
        out.process_titles = boolean(value, key);
      } else if (key == "server") {
        server = value;  // after the inst-jobs settings, so that server: wins over them
      } else if (key == "workers") {
        if (!value.IsNull() && !value.IsSequence()) fail(value, key, "must be a list of worker entries");
        workers = value;
      } else if (key == "periodic_jobs") {
        periodic = value;
      } else if (key == "work_queue") {
        const std::string mode = scalar(value, key);
        if (mode != "parent_process" && mode != "in_process") fail(value, key, "must be parent_process or in_process");
        inProcess = mode == "in_process";
      } else if (key == "disable_periodic_jobs") {
        disablePeriodic = boolean(value, key);
      } else if (kInstJobsApplied.contains(key) || kInstJobsIgnored.contains(key)) {
        instJobsSetting(key, value, out);
      } else if (kWorkerKeys.contains(key)) {
        defaults.emplace(canonicalWorkerKey(key), Located{value, key});
      } else {
        refuseMisspelling(value, key, key);
        defaults.emplace(key, Located{value, key});
      }
    }
    // inst-jobs' in_process work queue: workers reserve for themselves, hostq's direct transport.
    if (inProcess && !defaults.contains("transport")) {
      defaults.emplace("transport", Located{YAML::Node("direct"), "work_queue"});
    }
    if (server) parseServer(server, out.server);
    if (periodic) parsePeriodic(periodic, out.server.periodic_jobs);
    if (disablePeriodic) out.server.periodic_jobs.clear();
    if (workers && workers.IsSequence()) parseWorkers(workers, defaults, out);
    out.warnings = std::move(m_warnings);
    return out;
  }

 private:
  std::string m_origin;
  std::string m_environment;
  std::vector<std::string> m_warnings;
  mutable std::size_t m_mergedMaps = 0;  // maps merged through `<<`, over the whole file

  /// The document, or its section for the environment (else `default`) when it is made of
  /// environment sections as inst-jobs' delayed_jobs.yml is.
  YAML::Node section(const YAML::Node& document) const {
    if (!document || !document.IsMap()) return document;
    auto isSection = [](const YAML::Node& v) { return v.IsMap() || v.IsSequence(); };
    std::vector<std::string> names;
    bool sectioned = document.size() > 0;
    for (const auto& kv : document) {
      if (!kv.first.IsScalar()) return document;  // entries() reports it
      const std::string key = kv.first.Scalar();
      if (key == m_environment && isSection(kv.second)) return kv.second;
      names.push_back(key);
      const bool known = kTopLevelOnly.contains(key) || key == "workers" || kWorkerKeys.contains(key) ||
                         kInstJobsApplied.contains(key) || kInstJobsIgnored.contains(key);
      if (known || !isSection(kv.second)) sectioned = false;
    }
    for (const auto& kv : document) {
      if (kv.first.Scalar() == "default" && isSection(kv.second)) return kv.second;
    }
    if (sectioned) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      fail(document, "(document)",
           "no section for environment \"" + m_environment + "\" (the file has: " + list +
               "); choose one with --environment, HOSTQ_ENV or RAILS_ENV");
    }
    return document;
  }

  void warn(const YAML::Node& at, const std::string& where, const std::string& why) {
    std::string pos = m_origin;
    if (at && !at.Mark().is_null()) pos += ":" + std::to_string(at.Mark().line + 1);
    m_warnings.push_back(pos + ": " + where + ": ignored: " + why);
  }

  /// A key that is one or two typos away from a known one is an error, not a new extra.
  void refuseMisspelling(const YAML::Node& at, const std::string& key, const std::string& where) const {
    if (auto known = misspeltKey(key, {&kTopLevelOnly, &kWorkerKeys, &kInstJobsApplied}, &kInstJobsIgnored)) {
      fail(at, where, "unknown setting (did you mean \"" + *known + "\"?)");
    }
  }

  /// A top-level setting of inst-jobs (Delayed::Settings): applied where hostq has the same knob,
  /// otherwise accepted with a warning saying why it does nothing.
  void instJobsSetting(const std::string& key, const YAML::Node& value, PoolSettings& out) {
    if (auto it = kInstJobsIgnored.find(key); it != kInstJobsIgnored.end()) {
      warn(value, key, it->second);
    } else if (key == "max_attempts") {
      out.server.default_max_attempts = count(value, key, 1);
    } else if (key == "fetch_batch_size") {
      out.server.fetch_batch_size = count(value, key, 1);
    } else if (key == "disable_abandoned_job_cleanup") {
      if (boolean(value, key)) out.server.host_timeout = std::chrono::milliseconds(0);
    } else if (key == "parent_process") {
      parseParentProcess(value, out.server);
    }
  }

  void parseParentProcess(const YAML::Node& node, ServerSettings& s) {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, "parent_process", "must be a mapping");
    static const std::set<std::string, std::less<>> kKeys = {
        "server_address", "prefetched_jobs_timeout", "server_socket_timeout", "client_timeout", "client_connect_timeout"};
    for (const auto& [key, value] : entries(node, "parent_process")) {
      const std::string where = "parent_process." + key;
      if (key == "server_address") {
        std::string address = string(value, where);
        if (address.empty() || address.front() != '/') {
          warn(value, where, "a path relative to the Rails root, which hostq does not know; the default socket path is used");
        } else {
          std::error_code ec;
          // inst-jobs: an existing directory holds the socket; any other absolute path is the socket.
          s.socket_path = std::filesystem::is_directory(address, ec) ? address + "/hostq.sock" : address;
        }
      } else if (key == "prefetched_jobs_timeout") {
        s.prefetched_jobs_timeout = duration(value, where, false);
      } else if (key == "server_socket_timeout" || key == "client_timeout") {
        warn(value, where, "there is no per-job send timeout (jobs go over shared memory or a non-blocking socket)");
      } else if (key == "client_connect_timeout") {
        warn(value, where, "workers retry their connection with back-off until the server is up");
      } else {
        auto known = misspeltKey(key, {&kKeys});
        fail(value, where, known ? "unknown setting (did you mean \"" + *known + "\"?)" : "unknown setting");
      }
    }
  }

  void parsePeriodic(const YAML::Node& list, std::vector<PeriodicJob>& out) const {
    if (list.IsNull()) return;
    if (!list.IsSequence()) fail(list, "periodic_jobs", "must be a list of periodic jobs");
    std::set<std::string> names;
    static const std::set<std::string, std::less<>> kKeys = {"name",  "cron",     "tag",         "payload",
                                                             "queue", "priority", "max_attempts"};
    for (std::size_t i = 0; i < list.size(); ++i) {
      const YAML::Node entry = list[i];
      const std::string prefix = "periodic_jobs[" + std::to_string(i) + "]";
      if (!entry.IsMap()) fail(entry, prefix, "must be a mapping (name, cron, tag, …)");
      PeriodicJob p;
      std::set<std::string> given;
      for (const auto& [key, value] : entries(entry, prefix)) {
        const std::string where = prefix + "." + key;
        given.insert(key);
        if (key == "name") {
          p.name = nonBlank(value, where);
          if (!names.insert(p.name).second) fail(value, where, "duplicate periodic job name \"" + p.name + "\"");
        } else if (key == "cron") {
          p.cron = nonBlank(value, where);
          try {
            CronSchedule::parse(p.cron);
          } catch (const ValidationError& e) {
            fail(value, where, e.what());
          }
        } else if (key == "tag") {
          p.tag = nonBlank(value, where);
        } else if (key == "payload") {
          p.payload = string(value, where);
        } else if (key == "queue") {
          p.queue = nonBlank(value, where);
        } else if (key == "priority") {
          p.priority = static_cast<int>(integer(value, where, kMinPriority, kMaxPriority));
        } else if (key == "max_attempts") {
          p.max_attempts = count(value, where, 1);
        } else {
          auto known = misspeltKey(key, {&kKeys});
          fail(value, where, known ? "unknown key (did you mean \"" + *known + "\"?)" : "unknown key (name, cron, tag, payload, queue, priority, max_attempts)");
        }
      }
      for (const char* required : {"name", "cron", "tag"}) {
        if (!given.contains(required)) fail(entry, prefix, std::string("missing ") + required);
      }
      out.push_back(std::move(p));
    }
  }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& where, const std::string& what) const {
    std::string pos = m_origin;
    if (at && !at.Mark().is_null()) pos += ":" + std::to_string(at.Mark().line + 1);
    throw ValidationError(pos + ": " + where + ": " + what);
  }

  // Map entries in file order; refuses duplicate and non-scalar keys, which yaml-cpp would
  // otherwise keep silently (the second `queue:` in an entry is almost always a paste error).
  // YAML merge keys (`<<: *default`, how Rails configs share a section) are resolved here, since
  // yaml-cpp 0.7 reads `<<` as a plain key: the merged map's entries come after the map's own,
  // and own keys win.
  std::vector<std::pair<std::string, YAML::Node>> entries(const YAML::Node& map, const std::string& prefix,
                                                          int mergeDepth = 0) const {
    // An alias may point back at the map holding it (`&a {<<: *a}`): bound the merging.
    if (mergeDepth > 8) fail(map, prefix.empty() ? "<<" : prefix + ".<<", "merge keys nested too deep");
    std::vector<std::pair<std::string, YAML::Node>> out;
    std::set<std::string> seen;
    std::vector<YAML::Node> merged;
    for (const auto& kv : map) {
      const std::string where = prefix.empty() ? "(key)" : prefix;
      if (!kv.first.IsScalar()) fail(kv.first, where, "keys must be plain names");
      std::string key = kv.first.Scalar();
      if (key == "<<") {
        if (kv.second.IsSequence()) {
          for (const auto& m : kv.second) merged.push_back(m);
        } else {
          merged.push_back(kv.second);
        }
        for (const auto& m : merged) {
          if (!m.IsMap()) fail(kv.second, prefix.empty() ? "<<" : prefix + ".<<", "a merge key takes a mapping");
        }
        // Aliases make a small file expand without bound (a list of aliases to lists of aliases…).
        m_mergedMaps += merged.size();
        if (m_mergedMaps > 1000) fail(kv.second, prefix.empty() ? "<<" : prefix + ".<<", "too many merges");
        continue;
      }
      if (!seen.insert(key).second) fail(kv.first, prefix.empty() ? key : prefix + "." + key, "duplicate key");
      out.emplace_back(std::move(key), kv.second);
    }
    for (const auto& m : merged) {
      for (auto& [key, value] : entries(m, prefix, mergeDepth + 1)) {
        if (seen.insert(key).second) out.emplace_back(key, value);
      }
    }
    return out;
  }

  std::string scalar(const YAML::Node& v, const std::string& where) const {
    if (!v.IsScalar()) fail(v, where, "must be a single value");
    return v.Scalar();
  }

  std::string string(const YAML::Node& v, const std::string& where) const {
    if (v.IsNull()) return {};
    return scalar(v, where);
  }

  std::string nonBlank(const YAML::Node& v, const std::string& where) const {
    std::string text = string(v, where);
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail(v, where, "must not be blank");
    return text;
  }

  bool boolean(const YAML::Node& v, const std::string& where) const {
    bool b = false;
    if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) fail(v, where, "must be true or false");
    return b;
  }

  std::int64_t integer(const YAML::Node& v, const std::string& where, std::int64_t min,
                       std::int64_t max) const {
    auto n = parseInteger(scalar(v, where));
    if (!n) fail(v, where, "must be a whole number (got \"" + v.Scalar() + "\")");
    if (*n < min || *n > max) {
      fail(v, where, max >= std::numeric_limits<int>::max()
                         ? "must be at least " + std::to_string(min) + " (got " + std::to_string(*n) + ")"
                         : "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                               " (got " + std::to_string(*n) + ")");
    }
    return *n;
  }

  int count(const YAML::Node& v, const std::string& where, int min) const {
    return static_cast<int>(integer(v, where, min, std::numeric_limits<int>::max()));
  }

  std::chrono::milliseconds duration(const YAML::Node& v, const std::string& where,
                                     bool allow_zero = true) const {
    auto d = parseDuration(scalar(v, where));
    if (!d) {
      fail(v, where, "must be a duration: seconds (\"2.5\") or with a unit (\"250ms\", \"30s\", \"5m\"); got \"" +
                         v.Scalar() + "\"");
    }
    if (!allow_zero && d->count() == 0) fail(v, where, "must be greater than zero");
    return *d;
  }

  std::int64_t bytes(const YAML::Node& v, const std::string& where) const {
    auto b = parseByteSize(scalar(v, where));
    if (!b) fail(v, where, "must be a size in bytes, optionally with k, M or G (got \"" + v.Scalar() + "\")");
    return *b;
  }

  void parseServer(const YAML::Node& node, ServerSettings& s) const {
    if (node.IsNull()) return;
    if (!node.IsMap()) fail(node, "server", "must be a mapping");
    using Handler = std::function<void(const YAML::Node&, const std::string&)>;
    const std::map<std::string, Handler, std::less<>> handlers = {
        {"socket_path", [&](auto& v, auto& w) { s.socket_path = string(v, w); }},
        {"hostname", [&](auto& v, auto& w) { s.hostname = string(v, w); }},
        {"fetch_batch_size", [&](auto& v, auto& w) { s.fetch_batch_size = count(v, w, 1); }},
        {"max_batch", [&](auto& v, auto& w) { s.max_batch = count(v, w, 1); }},
        {"prefetched_jobs_timeout", [&](auto& v, auto& w) { s.prefetched_jobs_timeout = duration(v, w, false); }},
        {"flush_delay", [&](auto& v, auto& w) { s.flush_delay = duration(v, w); }},
        {"flush_batch", [&](auto& v, auto& w) { s.flush_batch = count(v, w, 1); }},
        {"poll_interval", [&](auto& v, auto& w) { s.poll_interval = duration(v, w, false); }},
        {"forced_latency", [&](auto& v, auto& w) { s.forced_latency = boolean(v, w); }},
        {"forced_latency_amount", [&](auto& v, auto& w) { s.forced_latency_amount = duration(v, w); }},
        {"orphan_purge_interval",
         [&](auto& v, auto& w) {
           auto d = duration(v, w, false);
           if (d.count() % 60'000 != 0) fail(v, w, "must be a whole number of minutes (e.g. \"15m\" or 900)");
           s.orphan_purge_interval = std::chrono::duration_cast<std::chrono::minutes>(d);
         }},
        {"max_workers", [&](auto& v, auto& w) { s.max_workers = count(v, w, 0); }},
        {"max_connections", [&](auto& v, auto& w) { s.max_connections = count(v, w, 1); }},
        {"max_frame_bytes",
         [&](auto& v, auto& w) {
           auto b = bytes(v, w);
           // Below a few KiB not even a registration with a long config would fit.
           if (b < 4096 || b > std::numeric_limits<std::uint32_t>::max()) {
             fail(v, w, "must be between 4k and 4G");
           }
           s.max_frame_bytes = static_cast<std::uint32_t>(b);
         }},
        {"read_timeout", [&](auto& v, auto& w) { s.read_timeout = duration(v, w, false); }},
        {"allowed_group", [&](auto& v, auto& w) { s.allowed_group = string(v, w); }},
        {"keep_failed_jobs", [&](auto& v, auto& w) { s.keep_failed_jobs = boolean(v, w); }},
        {"default_max_attempts", [&](auto& v, auto& w) { s.default_max_attempts = count(v, w, 1); }},
        {"idle_hook", [&](auto& v, auto& w) { s.idle_hook = string(v, w); }},
        {"restart_grace", [&](auto& v, auto& w) { s.restart_grace = duration(v, w); }},
        {"reconnect_grace", [&](auto& v, auto& w) { s.reconnect_grace = duration(v, w); }},
        {"held_batches",
         [&](auto& v, auto& w) {
           s.held_batches = count(v, w, 0);
           if (s.held_batches > 16) fail(v, w, "must be between 0 and 16 (connections, each holding one batch open)");
         }},
        {"held_max_hosts", [&](auto& v, auto& w) { s.held_max_hosts = count(v, w, 0); }},
        {"batch_max_open",
         [&](auto& v, auto& w) {
           s.batch_max_open = duration(v, w, false);
           if (s.batch_max_open.count() < 1) fail(v, w, "must be at least 1ms");
         }},
        {"http_listen",
         [&](auto& v, auto& w) {
           s.http_listen = string(v, w);
           if (!s.http_listen.empty() && !http::parseListenAddress(s.http_listen))
             fail(v, w, "must be HOST:PORT, e.g. 127.0.0.1:9187 or [::1]:9187");
         }},
        {"host_timeout", [&](auto& v, auto& w) { s.host_timeout = duration(v, w); }},
    };
    for (const auto& [key, value] : entries(node, "server")) {
      const std::string where = "server." + key;
      auto h = handlers.find(key);
      if (h == handlers.end()) {
        std::set<std::string, std::less<>> known;
        for (const auto& [name, handler] : handlers) known.insert(name);
        auto near = misspeltKey(key, {&known});
        fail(value, where, near ? "unknown setting (did you mean \"" + *near + "\"?)" : "unknown setting");
      }
      h->second(value, where);
    }
  }

  void parseWorkers(const YAML::Node& list, const std::map<std::string, Located>& defaults,
                    PoolSettings& out) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const YAML::Node entry = list[i];
      const std::string prefix = "workers[" + std::to_string(i) + "]";
      if (!entry.IsMap() && !entry.IsNull()) fail(entry, prefix, "must be a mapping of worker settings");

      std::map<std::string, Located> merged;
      for (const auto& [key, located] : defaults) {
        merged[key] = Located{located.node, prefix + "." + located.where + " (top-level default)"};
      }
      if (entry.IsMap()) {
        std::set<std::string> own;
        for (const auto& [key, value] : entries(entry, prefix)) {
          if (kTopLevelOnly.contains(key)) fail(value, prefix + "." + key, "is a top-level setting, not a worker key");
          if (auto it = kInstJobsIgnored.find(key); it != kInstJobsIgnored.end()) {
            warn(value, prefix + "." + key, it->second);
            continue;
          }
          if (kInstJobsApplied.contains(key)) {
            fail(value, prefix + "." + key, "is a pool-wide setting: give it at the top level");
          }
          if (!kWorkerKeys.contains(key)) refuseMisspelling(value, key, prefix + "." + key);
          const std::string canonical = canonicalWorkerKey(key);
          // `max_job_count` and `worker_max_job_count` in one entry: which one wins is a guess.
          if (!own.insert(canonical).second) fail(value, prefix + "." + key, "duplicate key (alias of " + canonical + ")");
          merged[canonical] = Located{value, prefix + "." + key};
        }
      }
      out.workers.push_back(parseWorker(merged, entry, prefix));
    }
  }

  WorkerSettings parseWorker(const std::map<std::string, Located>& keys, const YAML::Node& entry,
                             const std::string& prefix) const {
    WorkerSettings w;
    for (const auto& [key, at] : keys) {
      const YAML::Node& v = at.node;
      if (key == "queue") {
        w.config.queue = string(v, at.where);
        if (w.config.queue.find_first_not_of(" \t\r\n") == std::string::npos) fail(v, at.where, "must not be blank");
      } else if (key == "min_priority") {
        w.config.min_priority = static_cast<int>(integer(v, at.where, kMinPriority, kMaxPriority));
      } else if (key == "max_priority") {
        w.config.max_priority = static_cast<int>(integer(v, at.where, kMinPriority, kMaxPriority));
      } else if (key == "workers") {
        w.config.workers = count(v, at.where, 1);
      } else if (key == "transport") {
        auto t = parseTransport(scalar(v, at.where));
        if (!t) fail(v, at.where, "must be shm, socket or direct (got \"" + v.Scalar() + "\")");
        w.transport = *t;
      } else if (key == "max_job_count") {
        w.max_job_count = integer(v, at.where, 0, std::numeric_limits<std::int64_t>::max());
      } else if (key == "memory_high_water") {
        w.memory_high_water = bytes(v, at.where);
      } else if (key == "builtin_handlers") {
        w.builtin_handlers = boolean(v, at.where);
      } else if (key == "nice") {
        w.nice = static_cast<int>(integer(v, at.where, 0, 19));
      } else if (key == "jobs_per_request") {
        w.jobs_per_request = static_cast<int>(integer(v, at.where, 1, protocol::kMaxJobsPerReserve));
      } else {
        // Extras are part of the grouping key, compared as text: only scalars have an obvious one.
        if (!v.IsScalar()) fail(v, at.where, "extra worker keys must be single values (strings or numbers)");
        w.config.extra.emplace(key, v.Scalar());
      }
    }
    if (w.config.min_priority > w.config.max_priority) {
      fail(entry, prefix, "min_priority " + std::to_string(w.config.min_priority) + " is greater than max_priority " +
                              std::to_string(w.config.max_priority));
    }
    return w;
  }
};

}  // namespace

std::string resolveEnvironment(const std::string& explicit_name) {
  if (!explicit_name.empty()) return explicit_name;
  for (const char* var : {"HOSTQ_ENV", "RAILS_ENV"}) {
    if (const char* env = std::getenv(var); env && *env) return env;
  }
  return "production";
}

PoolSettings parsePoolSettings(const std::string& yaml, const std::string& origin, const std::string& environment) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    // e.mark is 0-based; e.msg is the bare message without yaml-cpp's own position prefix.
    std::string pos = origin;
    if (!e.mark.is_null()) pos += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw ValidationError(pos + ": invalid YAML: " + e.msg);
  }
  return Loader(origin, resolveEnvironment(environment)).load(root);
}

PoolSettings loadPoolSettings(const std::string& path, const std::string& environment) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ValidationError(path + ": cannot read config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ValidationError(path + ": cannot read config file");
  return parsePoolSettings(text.str(), path, environment);
}

std::string resolveSocketPath(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv("HOSTQ_SOCKET"); env && *env) return env;
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run) return std::string(run) + "/hostq/hostq.sock";
  return "/tmp/hostq-" + std::to_string(::getuid()) + "/hostq.sock";
}

std::string resolveDatabaseUrl(const std::string& explicit_url) {
  if (!explicit_url.empty()) return explicit_url;
  if (const char* env = std::getenv("HOSTQ_DATABASE_URL"); env && *env) return env;
  return {};
}

std::string resolveHostname(const std::string& explicit_name) {
  if (!explicit_name.empty()) return explicit_name;
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf) != 0) return "localhost";
  buf[HOST_NAME_MAX] = '\0';
  return buf;
}

}  // namespace hostq
