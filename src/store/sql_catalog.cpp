#include "store/sql_catalog.hpp"

namespace hostq::store {
namespace generated {
extern const Statement kStatements[];  // the generated sql_statements.cpp
}

std::span<const Statement> SqlCatalog::all() noexcept {
  return {generated::kStatements, generated::kStatementNames.size()};
}

}  // namespace hostq::store
