#pragma once
// Turns a libpq failure into a DbError whose kind tells the caller what to do next.
#include <libpq-fe.h>

#include <string>

#include "hostq/error.hpp"

namespace hostq::store {

/// How far a failed round trip had got: decides whether a lost connection is merely lost
/// (nothing we sent can have taken effect) or in doubt (a write may have committed).
enum class Phase {
  Idle,     ///< nothing sent yet (connect, or the statement never left)
  Read,     ///< a statement without side effects
  Write,    ///< an autocommit write, or COMMIT: a lost connection leaves its outcome unknown
  InTxn,    ///< inside an explicit transaction before COMMIT: a lost connection rolls it back
};

/// Classifies by SQLSTATE first, then by the connection's state. `result` may be null (the
/// failure happened before the server answered).
DbError classify(PGconn* conn, const PGresult* result, Phase phase, const std::string& context);

/// For tests of the classification table: the kind a SQLSTATE maps to on a healthy connection.
DbErrorKind kindOfSqlState(const std::string& sqlstate);

}  // namespace hostq::store
