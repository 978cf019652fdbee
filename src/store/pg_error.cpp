#include "store/pg_error.hpp"

namespace hostq::store {

DbErrorKind kindOfSqlState(const std::string& s) {
  // Class 08 (connection exception) and the shutdown / crash codes of class 57P all end the
  // session; the caller has to reconnect before anything else.
  if (s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" || s == "57P03") {
    return DbErrorKind::ConnectionLost;
  }
  // Rolled back by the server on its own accord; the same statement may well succeed now.
  if (s == "40001" || s == "40P01" || s == "55P03" || s == "57014") return DbErrorKind::Retryable;
  return DbErrorKind::GiveUp;
}

DbError classify(PGconn* conn, const PGresult* result, Phase phase, const std::string& context) {
  std::string sqlstate;
  std::string message;
  if (result != nullptr) {
    if (const char* s = PQresultErrorField(result, PG_DIAG_SQLSTATE)) sqlstate = s;
    message = PQresultErrorMessage(result);
  }
  if (message.empty() && conn != nullptr) message = PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const std::string text = context + ": " + (message.empty() ? "unknown libpq error" : message);

  const bool connectionBad = conn == nullptr || PQstatus(conn) == CONNECTION_BAD;
  DbErrorKind kind = sqlstate.empty() ? DbErrorKind::GiveUp : kindOfSqlState(sqlstate);
  if (connectionBad || kind == DbErrorKind::ConnectionLost) {
    // A write that was on the wire when the session died may or may not have committed. If the
    // server answered it with an error (e.g. 57P01 on shutdown) it certainly did not.
    kind = (phase == Phase::Write && sqlstate.empty()) ? DbErrorKind::InDoubt
                                                       : DbErrorKind::ConnectionLost;
  }
  return DbError(kind, sqlstate, text);
}

}  // namespace hostq::store
