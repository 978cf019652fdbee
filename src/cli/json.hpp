#pragma once
// Just enough JSON for the command line: a strict parser for one flat object of scalars per line
// (`hostq enqueue --stdin`) and a writer for JSON lines (`hostq jobs --json`, stats). No JSON
// package is installed and nested documents are never needed, so this stays small.
// Header-only so unit tests can use it without linking the CLI.
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

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

struct Value {
  enum class Type { Null, Bool, Number, String };
  Type type = Type::Null;
  std::string text;  ///< the decoded string, or a number's source text
  bool boolean = false;

  bool isNull() const noexcept { return type == Type::Null; }
  /// The number as an integer, if it is a number without fraction or exponent that fits.
  std::optional<std::int64_t> asInteger() const {
    if (type != Type::Number || text.find_first_of(".eE") != std::string::npos) return std::nullopt;
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
    return v;
  }
};

/// Keys in document order; duplicates are refused by the parser.
using Object = std::vector<std::pair<std::string, Value>>;

namespace detail {

class Parser {
 public:
  explicit Parser(std::string_view text) : m_text(text) {}

  Object object() {
    Object out;
    skipSpace();
    expect('{', "expected '{'");
    skipSpace();
    if (peek() == '}') {
      ++m_pos;
    } else {
      for (;;) {
        skipSpace();
        if (peek() != '"') fail("expected a key in double quotes");
        const std::size_t keyAt = m_pos;
        std::string key = string();
        for (const auto& [k, _] : out) {
          if (k == key) fail(keyAt, "duplicate key \"" + key + "\"");
        }
        skipSpace();
        expect(':', "expected ':'");
        skipSpace();
        out.emplace_back(std::move(key), value());
        skipSpace();
        if (peek() == ',') {
          ++m_pos;
          continue;
        }
        expect('}', "expected ',' or '}'");
        break;
      }
    }
    skipSpace();
    if (m_pos != m_text.size()) fail("unexpected text after the object");
    return out;
  }

 private:
  std::string_view m_text;
  std::size_t m_pos = 0;

  [[noreturn]] void fail(std::size_t at, const std::string& what) const { throw ParseError(at + 1, what); }
  [[noreturn]] void fail(const std::string& what) const { fail(m_pos, what); }

  int peek() const { return m_pos < m_text.size() ? static_cast<unsigned char>(m_text[m_pos]) : -1; }
  void expect(char c, const char* what) {
    if (peek() != static_cast<unsigned char>(c)) fail(what);
    ++m_pos;
  }
  void skipSpace() {
    while (m_pos < m_text.size() && (m_text[m_pos] == ' ' || m_text[m_pos] == '\t' || m_text[m_pos] == '\r' ||
                                     m_text[m_pos] == '\n')) {
      ++m_pos;
    }
  }
  bool consume(std::string_view word) {
    if (m_text.substr(m_pos, word.size()) != word) return false;
    m_pos += word.size();
    return true;
  }

  Value value() {
    Value v;
    const int c = peek();
    if (c == '"') {
      v.type = Value::Type::String;
      v.text = string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = Value::Type::Number;
      v.text = number();
    } else if (consume("true")) {
      v.type = Value::Type::Bool;
      v.boolean = true;
    } else if (consume("false")) {
      v.type = Value::Type::Bool;
    } else if (consume("null")) {
      v.type = Value::Type::Null;
    } else if (c == '{' || c == '[') {
      fail("nested objects and arrays are not supported; values must be strings, numbers, booleans or null");
    } else {
      fail("expected a value");
    }
    return v;
  }

  std::string number() {
    const std::size_t start = m_pos;
    auto digits = [&] {
      const std::size_t from = m_pos;
      while (peek() >= '0' && peek() <= '9') ++m_pos;
      return m_pos - from;
    };
    if (peek() == '-') ++m_pos;
    if (peek() == '0') {
      ++m_pos;
    } else if (digits() == 0) {
      fail("expected a digit");
    }
    if (peek() == '.') {
      ++m_pos;
      if (digits() == 0) fail("expected a digit after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++m_pos;
      if (peek() == '+' || peek() == '-') ++m_pos;
      if (digits() == 0) fail("expected a digit in the exponent");
    }
    return std::string(m_text.substr(start, m_pos - start));
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = peek();
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail("expected four hex digits after \\u");
      }
      ++m_pos;
    }
    return v;
  }

  static void appendUtf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    const std::size_t start = m_pos;
    ++m_pos;  // the opening quote
    std::string out;
    for (;;) {
      const int c = peek();
      if (c < 0) fail(start, "unterminated string");
      ++m_pos;
      if (c == '"') return out;
      if (c < 0x20) fail(m_pos - 1, "control character in string (escape it)");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      const int e = peek();
      ++m_pos;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += static_cast<char>(e);
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail(m_pos - 6, "lone low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!consume("\\u")) fail("high surrogate without its low half");
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail(m_pos - 6, "high surrogate without its low half");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          // PostgreSQL text cannot hold NUL; better a clear error here than a failed COPY later.
          if (cp == 0) fail(m_pos - 6, "\\u0000 is not allowed");
          appendUtf8(out, cp);
          break;
        }
        default:
          fail(m_pos - 1, "invalid escape");
      }
    }
  }
};

}  // namespace detail

/// Parses one JSON object whose values are all scalars. Throws ParseError.
inline Object parseObject(std::string_view text) { return detail::Parser(text).object(); }

/// `text` as a JSON string literal, quotes included. Bytes ≥ 0x80 pass through (UTF-8 stays
/// UTF-8); control characters are escaped.
inline std::string quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

/// Builds one JSON object: `ObjectWriter().add("id", 5).add("tag", tag).str()`.
/// Optionals that are empty become null; nested objects go in through addRaw().
class ObjectWriter {
 public:
  template <class T>
  ObjectWriter& add(std::string_view key, const T& value) {
    addKey(key);
    appendValue(value);
    return *this;
  }
  ObjectWriter& addNull(std::string_view key) {
    addKey(key);
    m_out += "null";
    return *this;
  }
  /// `json` must already be valid JSON (e.g. another ObjectWriter's str()).
  ObjectWriter& addRaw(std::string_view key, std::string_view json) {
    addKey(key);
    m_out += json;
    return *this;
  }
  std::string str() const { return m_out + "}"; }

 private:
  std::string m_out = "{";

  template <class>
  struct IsOptional : std::false_type {};
  template <class U>
  struct IsOptional<std::optional<U>> : std::true_type {};

  void addKey(std::string_view key) {
    if (m_out.size() > 1) m_out += ',';
    m_out += quote(key);
    m_out += ':';
  }

  template <class T>
  void appendValue(const T& value) {
    if constexpr (IsOptional<T>::value) {
      if (value) {
        appendValue(*value);
      } else {
        m_out += "null";
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      m_out += value ? "true" : "false";
    } else if constexpr (std::is_integral_v<T>) {
      m_out += std::to_string(value);
    } else if constexpr (std::is_floating_point_v<T>) {
      m_out += std::isfinite(value) ? fmt::format("{}", value) : std::string("null");
    } else {
      static_assert(std::is_convertible_v<const T&, std::string_view>, "unsupported JSON value type");
      m_out += quote(std::string_view(value));
    }
  }
};

}  // namespace hostq::cli::json
