#pragma once
// One libpq connection: session setup, lazily prepared statements, statement counting and
// error classification. Not thread-safe (one Store = one thread).
#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.hpp"
#include "store/pg_error.hpp"

namespace hostq::store {

/// A statement with a stable name; `sql` is prepared on first use on every new connection.
/// The statements themselves live in src/store/sql/*.sql (store/sql_catalog.hpp).
struct Statement {
  const char* name;
  const char* sql;
};

class PgResult {
 public:
  PgResult() = default;
  /// `statement` names the result in errors (a string that outlives it).
  explicit PgResult(PGresult* r, const char* statement = "") : m_r(r, &PQclear), m_statement(statement) {}
  int rows() const { return m_r ? PQntuples(m_r.get()) : 0; }
  int columns() const { return m_r ? PQnfields(m_r.get()) : 0; }
  /// The index of the column named `name`. A missing one is a statement out of step with the
  /// code that reads it: std::logic_error naming the column and the statement. Resolve once per
  /// result, not per row.
  int column(const char* name) const;
  bool isNull(int row, int col) const { return PQgetisnull(m_r.get(), row, col) != 0; }
  std::string_view text(int row, int col) const {
    return {PQgetvalue(m_r.get(), row, col), static_cast<std::size_t>(PQgetlength(m_r.get(), row, col))};
  }
  std::string str(int row, int col) const { return std::string(text(row, col)); }
  std::int64_t i64(int row, int col) const;
  int i32(int row, int col) const { return static_cast<int>(i64(row, col)); }
  bool boolean(int row, int col) const { return text(row, col) == "t"; }
  /// Whether column `col` came in binary format (exec with ResultFormat::Binary).
  bool binary(int col) const { return PQfformat(m_r.get(), col) == 1; }
  std::optional<std::string> optStr(int row, int col) const {
    return isNull(row, col) ? std::nullopt : std::optional<std::string>(str(row, col));
  }
  std::optional<std::int64_t> optI64(int row, int col) const {
    return isNull(row, col) ? std::nullopt : std::optional<std::int64_t>(i64(row, col));
  }
  std::int64_t affected() const;
  PGresult* get() const { return m_r.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> m_r{nullptr, &PQclear};
  const char* m_statement = "";
};

using Param = std::optional<std::string>;

class PgConnection {
 public:
  PgConnection(std::string conninfo, StoreOptions options);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  /// Connects and applies the session settings; throws DbError(ConnectionLost) on failure.
  void open();
  void close();
  bool ok() const { return m_conn != nullptr && PQstatus(m_conn) == CONNECTION_OK; }
  PGconn* raw() const { return m_conn; }

  /// Binary: every result column in PostgreSQL's binary format (for a hot statement whose
  /// reader decodes it: see PgResult::binary); parameters stay text.
  enum class ResultFormat { Text = 0, Binary = 1 };
  PgResult exec(const Statement& st, std::span<const Param> params, Phase phase,
                ResultFormat format = ResultFormat::Text);
  PgResult exec(const Statement& st, std::initializer_list<Param> params, Phase phase,
                ResultFormat format = ResultFormat::Text) {
    return exec(st, std::span<const Param>(params.begin(), params.size()), phase, format);
  }
  /// Prepares `st` now if this connection has not yet (exec does it on first use): for a caller
  /// that must not send a Parse later, e.g. inside a measured window.
  void prepare(const Statement& st, Phase phase);
  /// Simple-protocol query (may hold several statements); throws on error.
  PgResult simple(const std::string& sql, Phase phase);
  /// A catalog statement through the simple protocol: one that cannot run prepared (VACUUM) or
  /// must not be planned ahead (a table that may not exist yet).
  PgResult simple(const Statement& st, Phase phase);
  /// COPY … FROM STDIN with the given text-format payload; returns rows copied.
  std::int64_t copyIn(const std::string& copySql, const std::string& data);

  std::uint64_t statements() const { return m_statements; }
  /// Database clock minus this host's clock, sampled at connect (validation only).
  std::chrono::microseconds clockOffset() const { return m_clockOffset; }

 private:
  void check(PGresult* r, Phase phase, const std::string& context, ExecStatusType expected);

  std::string m_conninfo;
  StoreOptions m_options;
  PGconn* m_conn = nullptr;
  std::vector<std::string> m_prepared;  // names prepared on this connection
  std::uint64_t m_statements = 0;
  std::chrono::microseconds m_clockOffset{0};
};

// --- encoding helpers ---------------------------------------------------------------------------
std::string arrayLiteral(std::span<const std::string> items);
std::string arrayLiteral(std::span<const std::optional<std::string>> items);
std::string arrayLiteral(std::span<const std::int64_t> items);
std::string arrayLiteral(std::span<const bool> items);
std::int64_t micros(TimePoint t);
TimePoint fromMicros(std::int64_t us);
/// "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), the COPY text form of a timestamp.
std::string timestampText(std::int64_t us);
/// Escapes a value for COPY text format.
void appendCopyField(std::string& out, std::string_view value);

}  // namespace hostq::store
