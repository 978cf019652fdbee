// Every named statement of src/store/sql/*.sql against the schema the migrations build: a
// statement that names a column, table or function the schema lacks, or that does not parse,
// fails here naming it, before any code path that runs it is exercised.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "store/pg_connection.hpp"
#include "store/sql_catalog.hpp"
#include "support/db_fixture.hpp"

namespace hostq {
namespace {

class SqlCatalogTest : public test::DbTest {};

TEST_F(SqlCatalogTest, EveryStatementPreparesOnAMigratedSchema) {
  const auto all = store::SqlCatalog::all();
  ASSERT_FALSE(all.empty());
  StoreOptions o;
  o.schema = schema();
  o.application_name = "hostq-test catalog";
  store::PgConnection conn(url(), o);
  conn.open();
  std::set<std::string> names;
  for (const auto& st : all) {
    EXPECT_TRUE(names.insert(st.name).second) << st.name << " is in the catalog twice";
    // PQprepare: parsed, analysed and planned against this schema, never run. As the unnamed
    // statement, each replacing the last: the connection's own session statement is already
    // prepared under its name. A failed Parse outside a transaction leaves the connection usable.
    PGresult* r = PQprepare(conn.raw(), "", st.sql, 0, nullptr);
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK)
        << st.name << " does not prepare: " << PQresultErrorMessage(r) << "\n" << st.sql;
    PQclear(r);
  }
}

TEST_F(SqlCatalogTest, AStatementIsFoundByItsName) {
  // The name written after `-- name:`, prepared with the hostq_ prefix.
  EXPECT_STREQ(store::sql("claim_held").name, "hostq_claim_held");
  EXPECT_NE(std::string(store::sql("claim_held").sql).find("FOR UPDATE SKIP LOCKED"), std::string::npos);
  // Comment lines document a statement in its file and are not sent to the server.
  EXPECT_EQ(std::string(store::sql("claim_held").sql).find("\n--"), std::string::npos);
  EXPECT_EQ(std::string(store::sql("claim_held").sql).find("{{"), std::string::npos);
}

TEST_F(SqlCatalogTest, AMissingColumnIsAnErrorNamingIt) {
  store::PgConnection conn(url(), StoreOptions{});
  conn.open();
  const auto r = conn.exec(store::sql("ping"), {}, store::Phase::Read);
  EXPECT_EQ(r.column("ok"), 0);
  try {
    (void)r.column("nope");
    ADD_FAILURE() << "no error for a missing column";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("\"nope\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("hostq_ping"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hostq
