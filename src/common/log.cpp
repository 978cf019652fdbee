#include "common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>

namespace hostq::log {

void init(const std::string& component) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(component, sink);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %n[%P]: %v", spdlog::pattern_time_type::utc);
  const char* level = std::getenv("HOSTQ_LOG_LEVEL");
  logger->set_level(level ? spdlog::level::from_str(level) : spdlog::level::info);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace hostq::log
