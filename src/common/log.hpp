#pragma once
// One-line structured logs to stderr: `2026-11-29T13:51:20.123Z INFO  server: msg key=value`.
// spdlog does the formatting and the level filter; this header fixes the format once.
#include <spdlog/spdlog.h>

namespace hostq::log {

/// Installs the process-wide stderr logger with `component` (e.g. "server", "worker 3") as its
/// name. Level from HOSTQ_LOG_LEVEL (trace…off), default info. Safe to call again after fork.
void init(const std::string& component);

}  // namespace hostq::log
