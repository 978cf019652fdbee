// libFuzzer entry for the config loader: a pool's YAML file is operator input, and a typo must
// come back as a ValidationError naming the key (or yaml-cpp's parse error), never a crash, a
// hang or an out-of-bounds access (ASan/UBSan). Property checked besides: whatever parses
// satisfies the bounds the loader promises.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "hostq/config.hpp"
#include "hostq/error.hpp"
#include "http/listen_address.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  try {
    const hostq::PoolSettings s = hostq::parsePoolSettings(yaml, "<fuzz>");
    if (s.server.fetch_batch_size < 1 || s.server.max_batch < 1 || s.server.flush_batch < 1) std::abort();
    if (s.server.max_frame_bytes < 4096) std::abort();
    if (s.server.default_max_attempts < 1) std::abort();
    if (!s.server.http_listen.empty() && !hostq::http::parseListenAddress(s.server.http_listen)) std::abort();
    for (const auto& w : s.workers) {
      if (w.config.queue.empty()) std::abort();
      if (w.config.min_priority > w.config.max_priority) std::abort();
      if (w.max_job_count < 0 || w.memory_high_water < 0) std::abort();
    }
  } catch (const hostq::ValidationError&) {
  } catch (const YAML::Exception&) {
  }
  return 0;
}
