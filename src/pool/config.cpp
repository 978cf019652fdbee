// YAML config loader (delayed_jobs.yml semantics, see docs/cli.md) and the resolution of the
// settings every verb shares. Everything is validated here, at load time: a pool must not
// discover a typo in its third worker entry an hour after it started.
#include "hostq/config.hpp"

#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "hostq/error.hpp"
#include "http/listen_address.hpp"
#include "pool/config_parse.hpp"

namespace hostq {

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
const std::set<std::string, std::less<>> kTopLevelOnly = {"server", "database_url",
                                                          "slow_exit_timeout", "process_titles"};

// inst-jobs spellings, so an existing delayed_jobs.yml mostly loads unchanged.
std::string canonicalWorkerKey(const std::string& key) {
  if (key == "worker_max_job_count") return "max_job_count";
  if (key == "worker_memory_high_water") return "memory_high_water";
  return key;
}

/// Where a value came from, for error messages: "workers[2].queue" or, for a top-level default
/// merged into entry 2, "workers[2].queue (top-level default)".
struct Located {
  YAML::Node node;
  std::string where;
};

class Loader {
 public:
  explicit Loader(std::string origin) : m_origin(std::move(origin)) {}

  PoolSettings load(const YAML::Node& root) {
    PoolSettings out;
    if (!root || root.IsNull()) return out;
    if (root.IsSequence()) {
      parseWorkers(root, {}, out);
      return out;
    }
    if (!root.IsMap()) fail(root, "(document)", "must be a mapping or a list of worker entries");

    std::map<std::string, Located> defaults;
    YAML::Node workers;
    for (const auto& [key, value] : entries(root, "")) {
      if (key == "database_url") {
        out.database_url = string(value, key);
      } else if (key == "slow_exit_timeout") {
        out.slow_exit_timeout = duration(value, key);
      } else if (key == "process_titles") {
        out.process_titles = boolean(value, key);
      } else if (key == "server") {
        parseServer(value, out.server);
      } else if (key == "workers") {
        if (!value.IsNull() && !value.IsSequence()) fail(value, key, "must be a list of worker entries");
        workers = value;
      } else {
        defaults.emplace(canonicalWorkerKey(key), Located{value, key});
      }
    }
    if (workers && workers.IsSequence()) parseWorkers(workers, defaults, out);
    return out;
  }

 private:
  std::string m_origin;

  [[noreturn]] void fail(const YAML::Node& at, const std::string& where, const std::string& what) const {
    std::string pos = m_origin;
    if (at && !at.Mark().is_null()) pos += ":" + std::to_string(at.Mark().line + 1);
    throw ValidationError(pos + ": " + where + ": " + what);
  }

  // Map entries in file order; refuses duplicate and non-scalar keys, which yaml-cpp would
  // otherwise keep silently (the second `queue:` in an entry is almost always a paste error).
  std::vector<std::pair<std::string, YAML::Node>> entries(const YAML::Node& map, const std::string& prefix) const {
    std::vector<std::pair<std::string, YAML::Node>> out;
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const std::string where = prefix.empty() ? "(key)" : prefix;
      if (!kv.first.IsScalar()) fail(kv.first, where, "keys must be plain names");
      std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) fail(kv.first, prefix.empty() ? key : prefix + "." + key, "duplicate key");
      out.emplace_back(std::move(key), kv.second);
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
    };
    for (const auto& [key, value] : entries(node, "server")) {
      const std::string where = "server." + key;
      auto h = handlers.find(key);
      if (h == handlers.end()) fail(value, where, "unknown setting");
      h->second(value, where);
    }
  }

  void parseWorkers(const YAML::Node& list, const std::map<std::string, Located>& defaults,
                    PoolSettings& out) const {
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

PoolSettings parsePoolSettings(const std::string& yaml, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    // e.mark is 0-based; e.msg is the bare message without yaml-cpp's own position prefix.
    std::string pos = origin;
    if (!e.mark.is_null()) pos += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw ValidationError(pos + ": invalid YAML: " + e.msg);
  }
  return Loader(origin).load(root);
}

PoolSettings loadPoolSettings(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ValidationError(path + ": cannot read config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ValidationError(path + ": cannot read config file");
  return parsePoolSettings(text.str(), path);
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
