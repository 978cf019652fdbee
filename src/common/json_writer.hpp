#pragma once
// A minimal JSON writer for stats and bench output: objects, arrays, strings, numbers, bools.
// Enough for machine-readable output without a JSON dependency in the library.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>

namespace hostq {

class JsonWriter {
 public:
  JsonWriter& beginObject() { sep(); m_out += '{'; m_first = true; return *this; }
  JsonWriter& endObject() { m_out += '}'; m_first = false; return *this; }
  JsonWriter& beginArray() { sep(); m_out += '['; m_first = true; return *this; }
  JsonWriter& endArray() { m_out += ']'; m_first = false; return *this; }
  JsonWriter& key(std::string_view k) {
    sep();
    str(k);
    m_out += ':';
    m_first = true;  // the value follows without a comma
    return *this;
  }
  JsonWriter& value(std::string_view s) { sep(); str(s); return *this; }
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(bool b) { sep(); m_out += b ? "true" : "false"; return *this; }
  template <class T, class = std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>>
  JsonWriter& value(T n) {
    sep();
    if constexpr (std::is_floating_point_v<T>) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(n));
      m_out += buf;
    } else {
      m_out += std::to_string(n);
    }
    return *this;
  }
  template <class T>
  JsonWriter& field(std::string_view k, const T& v) { key(k); return value(v); }
  const std::string& str() const { return m_out; }

 private:
  void sep() {
    if (!m_first && !m_out.empty()) m_out += ',';
    m_first = false;
  }
  void str(std::string_view s) {
    m_out += '"';
    for (char c : s) {
      switch (c) {
        case '"': m_out += "\\\""; break;
        case '\\': m_out += "\\\\"; break;
        case '\n': m_out += "\\n"; break;
        case '\r': m_out += "\\r"; break;
        case '\t': m_out += "\\t"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            m_out += buf;
          } else {
            m_out += c;
          }
      }
    }
    m_out += '"';
  }
  std::string m_out;
  bool m_first = true;
};

}  // namespace hostq
