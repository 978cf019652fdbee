#pragma once
// An SQL identifier (a schema name from a flag or an option) quoted for statement text, where a
// bind parameter cannot go (CREATE SCHEMA, SET search_path, DROP SCHEMA).
#include <string>

namespace hostq::store {

/// "name" with every " doubled: PostgreSQL's quote_ident, always quoting.
inline std::string quoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

}  // namespace hostq::store
