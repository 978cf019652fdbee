#pragma once
// Every SQL statement the store, the admin and maintenance stores and `hostq bench` run: one
// named block per statement in src/store/sql/*.sql (docs/store.md, "Where the SQL lives"),
// embedded at build time by cmake/embed_statements.cpp, which also fails the build on a
// duplicate name or an unknown fragment. A name is looked up when the code naming it compiles:
// a misspelt or removed statement is a compile error, never a failure at run time.
#include <cstddef>
#include <span>
#include <string_view>

#include "store/pg_connection.hpp"
#include "store/sql_statement_names.hpp"  // generated

namespace hostq::store {

class SqlCatalog {
 public:
  /// A statement's name as written after `-- name:`, checked against the catalog at compile time.
  class Name {
   public:
    template <std::size_t N>
    consteval Name(const char (&name)[N]) : m_index(indexOf(std::string_view(name, N - 1))) {}
    std::size_t index() const noexcept { return m_index; }

   private:
    static consteval std::size_t indexOf(std::string_view name) {
      for (std::size_t i = 0; i < generated::kStatementNames.size(); ++i) {
        if (generated::kStatementNames[i] == name) return i;
      }
      // Reached only at compile time, where it is an error naming this line.
      throw "no statement of this name in src/store/sql/*.sql";
    }
    std::size_t m_index;
  };

  /// The statement named `name` (prepared as hostq_NAME).
  static const Statement& get(Name name) noexcept { return all()[name.index()]; }
  /// Every statement, in name order.
  static std::span<const Statement> all() noexcept;
};

/// SqlCatalog::get, the short way the store's code spells it: sql("claim_held").
inline const Statement& sql(SqlCatalog::Name name) noexcept { return SqlCatalog::get(name); }

}  // namespace hostq::store
