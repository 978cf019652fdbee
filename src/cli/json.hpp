#pragma once
// The command line's JSON input: one flat object of scalars per line (`hostq enqueue --stdin`),
// parsed by nlohmann-json and then held to what a job line may be. Output goes through
// common/json.hpp's Json and dumpJson.
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/json.hpp"

namespace hostq::cli::json {

class ParseError : public std::runtime_error {
 public:
  ParseError(std::size_t column, const std::string& what)
      : std::runtime_error("column " + std::to_string(column) + ": " + what), m_column(column) {}
  /// 1-based position of the offending byte.
  std::size_t column() const noexcept { return m_column; }

 private:
  std::size_t m_column;
};

/// Parses one JSON object whose values are strings, numbers, booleans or null; keys in document
/// order. Refuses nested values, duplicate keys (which one would win is nobody's guess) and
/// U+0000 in strings (PostgreSQL text cannot hold it; better now than a failed COPY later).
/// Throws ParseError.
inline Json parseObject(std::string_view text) {
  std::size_t duplicate_at = 0;
  std::string duplicate;
  // The callback sees each key as it is read; `seen` holds the top-level keys so far.
  Json seen = Json::object();
  const auto check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (seen.contains(key)) duplicate = key;
      seen[key] = true;
    }
    return true;
  };
  Json value;
  try {
    value = Json::parse(text.begin(), text.end(), check);
  } catch (const Json::parse_error& e) {
    throw ParseError(e.byte == 0 ? 1 : e.byte, e.what());
  }
  if (!value.is_object()) throw ParseError(1, "expected one JSON object");
  if (!duplicate.empty()) {
    duplicate_at = text.find("\"" + duplicate + "\"");
    duplicate_at = text.find("\"" + duplicate + "\"", duplicate_at + 1);
    throw ParseError(duplicate_at + 1, "duplicate key \"" + duplicate + "\"");
  }
  for (const auto& [key, v] : value.items()) {
    const std::size_t at = text.find("\"" + key + "\"") + 1;
    if (v.is_structured())
      throw ParseError(at, "\"" + key +
                               "\": nested objects and arrays are not supported; values must be strings, numbers, "
                               "booleans or null");
    if (v.is_string() && v.get_ref<const std::string&>().find('\0') != std::string::npos)
      throw ParseError(at, "\"" + key + "\": \\u0000 is not allowed");
  }
  return value;
}

}  // namespace hostq::cli::json
