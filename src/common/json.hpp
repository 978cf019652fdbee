#pragma once
// JSON for everything hostq writes or reads (stats, job lines, bench reports): nlohmann-json.
// ordered_json keeps keys in insertion order, so the output reads as it always has (the keys are
// a contract; their order is not, but people diff the lines).
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hostq {

using Json = nlohmann::ordered_json;

/// One line of compact JSON. Bytes that are not UTF-8 (a job's error text can hold anything)
/// become U+FFFD instead of throwing; control characters are escaped, so the line stays one line.
inline std::string dumpJson(const Json& value, int indent = -1) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

/// `text` parsed, or a discarded value (is_discarded()) when it is not JSON.
inline Json parseJsonOrDiscard(std::string_view text) { return Json::parse(text.begin(), text.end(), nullptr, false); }

/// The number at a JSON pointer ("/handoff/p50_us"), or nullopt when there is none there.
inline std::optional<double> numberAt(const Json& doc, const std::string& pointer) {
  try {
    const Json::json_pointer p(pointer);
    if (!doc.is_structured() || !doc.contains(p)) return std::nullopt;
    const Json& v = doc.at(p);
    if (!v.is_number()) return std::nullopt;
    return v.get<double>();
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

/// True when the value at `pointer` is the boolean true.
inline bool flagAt(const Json& doc, const std::string& pointer) {
  try {
    const Json::json_pointer p(pointer);
    return doc.is_structured() && doc.contains(p) && doc.at(p).is_boolean() && doc.at(p).get<bool>();
  } catch (const Json::exception&) {
    return false;
  }
}

}  // namespace hostq
