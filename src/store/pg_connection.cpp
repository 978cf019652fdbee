#include "store/pg_connection.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <stdexcept>

#include "store/sql_catalog.hpp"

namespace hostq::store {

int PgResult::column(const char* name) const {
  const int c = m_r ? PQfnumber(m_r.get(), name) : -1;
  if (c < 0) {
    throw std::logic_error(std::string("the result of ") + (*m_statement ? m_statement : "a statement") +
                           " has no column \"" + name + "\"");
  }
  return c;
}

std::int64_t PgResult::i64(int row, int col) const {
  auto t = text(row, col);
  std::int64_t v = 0;
  std::from_chars(t.data(), t.data() + t.size(), v);
  return v;
}

std::int64_t PgResult::affected() const {
  const char* s = PQcmdTuples(m_r.get());
  return (s != nullptr && *s != '\0') ? std::strtoll(s, nullptr, 10) : 0;
}

PgConnection::PgConnection(std::string conninfo, StoreOptions options)
    : m_conninfo(std::move(conninfo)), m_options(std::move(options)) {}

PgConnection::~PgConnection() { close(); }

void PgConnection::close() {
  if (m_conn != nullptr) PQfinish(m_conn);
  m_conn = nullptr;
  m_prepared.clear();
}

void PgConnection::open() {
  close();
  // TCP keepalives on both ends (the session settings below set the server's side): a host that
  // vanishes without closing its connections has its sessions, and the row locks of their open
  // transactions, dropped within about 20 s instead of the kernel's two hours. Unix sockets
  // ignore them.
  const char* keys[] = {"dbname", "application_name", "keepalives", "keepalives_idle",
                        "keepalives_interval", "keepalives_count", nullptr};
  const char* values[] = {m_conninfo.c_str(), m_options.application_name.c_str(), "1", "10", "3",
                          "3", nullptr};
  // expand_dbname=1: the URL / key=value string is expanded; application_name given here is only
  // a default the URL can override.
  m_conn = PQconnectdbParams(keys, values, 1);
  if (m_conn == nullptr || PQstatus(m_conn) != CONNECTION_OK) {
    DbError e = classify(m_conn, nullptr, Phase::Idle, "connect");
    close();
    throw DbError(DbErrorKind::ConnectionLost, e.sqlstate(), e.what());
  }
  // NOTICEs (e.g. "relation already exists, skipping" from IF NOT EXISTS migrations) are
  // expected chatter; libpq's default would print them to stderr.
  PQsetNoticeProcessor(m_conn, [](void*, const char*) {}, nullptr);
  auto r = exec(sql("session"),
                {Param(m_options.schema), Param(m_options.nested_loop_joins ? "true" : "false"),
                 Param(std::to_string(m_options.idle_in_transaction_timeout.count()))},
                Phase::Read);
  const auto dbNow = r.i64(0, r.column("db_now_us"));
  const auto localNow = micros(std::chrono::time_point_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now()));
  m_clockOffset = std::chrono::microseconds(dbNow - localNow);
}

void PgConnection::check(PGresult* r, Phase phase, const std::string& context,
                         ExecStatusType expected) {
  const auto status = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == expected || (expected == PGRES_COMMAND_OK && status == PGRES_TUPLES_OK) ||
      (expected == PGRES_TUPLES_OK && status == PGRES_COMMAND_OK)) {
    return;
  }
  DbError e = classify(m_conn, r, phase, context);
  if (r != nullptr) PQclear(r);
  throw e;
}

void PgConnection::prepare(const Statement& st, Phase phase) {
  if (!ok()) throw DbError(DbErrorKind::ConnectionLost, "", std::string(st.name) + ": not connected");
  if (std::find(m_prepared.begin(), m_prepared.end(), st.name) != m_prepared.end()) return;
  ++m_statements;
  // Parameter types are left to the server: every statement casts its parameters itself.
  PGresult* r = PQprepare(m_conn, st.name, st.sql, 0, nullptr);
  // Preparing has no side effect; a loss here is a plain ConnectionLost.
  check(r, phase == Phase::Write ? Phase::Read : phase, std::string("prepare ") + st.name,
        PGRES_COMMAND_OK);
  PQclear(r);
  m_prepared.emplace_back(st.name);
}

PgResult PgConnection::exec(const Statement& st, std::span<const Param> params, Phase phase,
                            ResultFormat format) {
  prepare(st, phase);
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    values[i] = params[i] ? params[i]->data() : nullptr;
    lengths[i] = params[i] ? static_cast<int>(params[i]->size()) : 0;
  }
  ++m_statements;
  PGresult* r = PQexecPrepared(m_conn, st.name, static_cast<int>(params.size()), values.data(),
                               lengths.data(), nullptr, static_cast<int>(format));
  check(r, phase, st.name, PGRES_TUPLES_OK);
  return PgResult(r, st.name);
}

PgResult PgConnection::simple(const std::string& sql, Phase phase) {
  if (!ok()) throw DbError(DbErrorKind::ConnectionLost, "", "not connected");
  ++m_statements;
  PGresult* r = PQexec(m_conn, sql.c_str());
  check(r, phase, sql.size() > 60 ? sql.substr(0, 60) + "…" : sql, PGRES_COMMAND_OK);
  return PgResult(r);
}

PgResult PgConnection::simple(const Statement& st, Phase phase) {
  if (!ok()) throw DbError(DbErrorKind::ConnectionLost, "", std::string(st.name) + ": not connected");
  ++m_statements;
  PGresult* r = PQexec(m_conn, st.sql);
  check(r, phase, st.name, PGRES_COMMAND_OK);
  return PgResult(r, st.name);
}

std::int64_t PgConnection::copyIn(const std::string& copySql, const std::string& data) {
  if (!ok()) throw DbError(DbErrorKind::ConnectionLost, "", "not connected");
  ++m_statements;
  PGresult* r = PQexec(m_conn, copySql.c_str());
  check(r, Phase::InTxn, "COPY", PGRES_COPY_IN);
  PQclear(r);
  // Chunks keep libpq's output buffer bounded; the server sees one continuous stream.
  constexpr std::size_t kChunk = 1 << 20;
  for (std::size_t off = 0; off < data.size(); off += kChunk) {
    const auto n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(m_conn, data.data() + off, static_cast<int>(n)) != 1) break;
  }
  PQputCopyEnd(m_conn, nullptr);
  PgResult last;
  while (PGresult* res = PQgetResult(m_conn)) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      // drain the rest so the connection is usable for ROLLBACK
      while (PGresult* more = PQgetResult(m_conn)) PQclear(more);
      check(res, Phase::InTxn, "COPY", PGRES_COMMAND_OK);
    }
    last = PgResult(res);
  }
  if (last.get() == nullptr) check(nullptr, Phase::InTxn, "COPY", PGRES_COMMAND_OK);
  return last.affected();
}

// --- encoding ------------------------------------------------------------------------------------

namespace {
void appendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}
}  // namespace

std::string arrayLiteral(std::span<const std::string> items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    appendQuoted(out, items[i]);
  }
  return out + "}";
}

std::string arrayLiteral(std::span<const std::optional<std::string>> items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    if (items[i]) {
      appendQuoted(out, *items[i]);
    } else {
      out += "NULL";
    }
  }
  return out + "}";
}

std::string arrayLiteral(std::span<const std::int64_t> items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    out += std::to_string(items[i]);
  }
  return out + "}";
}

std::string arrayLiteral(std::span<const bool> items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    out += items[i] ? 't' : 'f';
  }
  return out + "}";
}

std::int64_t micros(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint fromMicros(std::int64_t us) { return TimePoint(std::chrono::microseconds(us)); }

std::string timestampText(std::int64_t us) {
  using namespace std::chrono;
  const sys_time<microseconds> tp{microseconds(us)};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss<microseconds> tod{tp - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02lld:%02lld:%02lld.%06lld", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()),
                static_cast<long long>(tod.hours().count()),
                static_cast<long long>(tod.minutes().count()),
                static_cast<long long>(tod.seconds().count()),
                static_cast<long long>(tod.subseconds().count()));
  return buf;
}

void appendCopyField(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

}  // namespace hostq::store
