#pragma once
// Scalar parsers behind the YAML config loader, exposed so tests (and CLI flags that take the same
// notation) can use them directly. All return nullopt on anything they do not fully consume.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hostq::config_detail {

/// "1.5" (seconds) | "250ms" | "30s" | "2m"; negative values are refused. Rounded to the
/// millisecond.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);

/// parseDuration's forms, or hours and days ("12h", "7d", "1.5d") for retention-sized spans (the
/// config's durations stay in ms/s/m). Whole seconds, rounded.
std::optional<std::chrono::seconds> parseLongDuration(std::string_view text);

/// "4096" | "64k" | "512M" | "2G" (binary multiples; "kB"/"KiB" spellings accepted); fractions
/// allowed with a suffix ("1.5G"). Negative values are refused.
std::optional<std::int64_t> parseByteSize(std::string_view text);

/// A whole decimal number, optional leading '-', nothing else (no "+", "0x", "1e3", spaces).
std::optional<std::int64_t> parseInteger(std::string_view text);

}  // namespace hostq::config_detail
