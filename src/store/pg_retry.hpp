#pragma once
// One statement on a PgConnection of a one-shot caller (admin verbs, the maintenance thread),
// run again when running it again is safe: after a server-side rollback (deadlock, serialization
// failure) or a lost connection that cannot have applied it. A write whose outcome is in doubt is
// reported as it is. The Store's hot path has its own, finer policy (pg_store.cpp).
#include "store/pg_connection.hpp"

namespace hostq::store {

inline PgResult execRetrying(PgConnection& conn, const Statement& st, std::span<const Param> params, Phase phase,
                             int retries = 3) {
  for (int attempt = 0;; ++attempt) {
    if (!conn.ok()) conn.open();
    try {
      return conn.exec(st, params, phase);
    } catch (const DbError& e) {
      const bool again = e.kind() == DbErrorKind::Retryable || e.kind() == DbErrorKind::ConnectionLost;
      if (!again || attempt >= retries) throw;
      if (e.kind() == DbErrorKind::ConnectionLost) conn.close();
    }
  }
}

}  // namespace hostq::store
