#pragma once
// The benchmarks that need PostgreSQL take it from HOSTQ_TEST_DATABASE_URL, like the tests, and
// skip (with the reason) without it.
#include <benchmark/benchmark.h>

#include <cstdlib>

namespace hostq::bench {

/// HOSTQ_TEST_DATABASE_URL, or nullptr when it is unset or empty.
inline const char* databaseUrl() {
  const char* url = std::getenv("HOSTQ_TEST_DATABASE_URL");
  return (url != nullptr && *url != '\0') ? url : nullptr;
}

/// Marks `state` skipped when there is no database; true then.
inline bool skipWithoutDatabase(benchmark::State& state) {
  if (databaseUrl() != nullptr) return false;
  state.SkipWithError("HOSTQ_TEST_DATABASE_URL is not set (. scripts/pg.sh; pg_up)");
  return true;
}

}  // namespace hostq::bench
