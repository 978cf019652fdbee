#pragma once
// Error types of the library. Database errors are classified by what the caller should do.
#include <stdexcept>
#include <string>

namespace hostq {

/// A caller passed something the job system refuses (blank queue, priority out of range, …).
class ValidationError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// What the caller of a failed database operation should do.
enum class DbErrorKind {
  ConnectionLost,  ///< the connection is gone: reconnect, then retry what is safe to retry
  Retryable,       ///< transient (serialization failure, deadlock, lock timeout): retry the statement
  InDoubt,         ///< connection lost during COMMIT / a write: outcome unknown, reconcile, never blindly retry
  GiveUp,          ///< a bug or a permanent condition (syntax, constraint, permission): report it
};

class DbError : public std::runtime_error {
 public:
  DbError(DbErrorKind kind, std::string sqlstate, const std::string& message)
      : std::runtime_error(message), m_kind(kind), m_sqlstate(std::move(sqlstate)) {}
  DbErrorKind kind() const noexcept { return m_kind; }
  /// Five-character SQLSTATE, or empty when the error did not come from the server.
  const std::string& sqlstate() const noexcept { return m_sqlstate; }
  bool poisonsConnection() const noexcept {
    return m_kind == DbErrorKind::ConnectionLost || m_kind == DbErrorKind::InDoubt;
  }
  bool isRetryable() const noexcept { return m_kind == DbErrorKind::Retryable; }
  bool isInDoubt() const noexcept { return m_kind == DbErrorKind::InDoubt; }

 private:
  DbErrorKind m_kind;
  std::string m_sqlstate;
};

/// The database holds a schema newer than this binary knows; nothing was touched.
class SchemaTooNewError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace hostq
