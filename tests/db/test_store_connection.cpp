// Wake-ups (LISTEN/NOTIFY), statement counting, error classification and reconnects.
#include <poll.h>

#include "store/pg_error.hpp"
#include "support/db_fixture.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

class StoreConnection : public DbTest {};

TEST_F(StoreConnection, EnqueueNotifiesListenersOncePerStatement) {
  auto listener = connectStore();
  listener->listen();
  EXPECT_GE(listener->socket(), 0);
  EXPECT_EQ(listener->drainNotifications(), 0);
  put(job());
  int got = 0;
  EXPECT_TRUE(waitUntil([&] {
    got += listener->drainNotifications();
    return got >= 1;
  }));
  std::vector<NewJob> jobs(500, job());
  store->enqueueBulk(jobs);
  got = 0;
  EXPECT_TRUE(waitUntil([&] {
    got += listener->drainNotifications();
    return got >= 1;
  }));
  EXPECT_EQ(got, 1);  // one COPY statement, one notification
}

TEST_F(StoreConnection, SocketBecomesReadableOnNotify) {
  auto listener = connectStore();
  listener->listen();
  put(job());
  pollfd p{listener->socket(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10'000), 1);
  EXPECT_EQ(listener->drainNotifications(), 1);
}

TEST_F(StoreConnection, SqlStatesAreClassifiedByWhatTheCallerShouldDo) {
  using store::kindOfSqlState;
  EXPECT_EQ(kindOfSqlState("08006"), DbErrorKind::ConnectionLost);
  EXPECT_EQ(kindOfSqlState("57P01"), DbErrorKind::ConnectionLost);
  for (const char* s : {"40001", "40P01", "55P03", "57014"}) EXPECT_EQ(kindOfSqlState(s), DbErrorKind::Retryable) << s;
  for (const char* s : {"42601", "23505", "42501"}) EXPECT_EQ(kindOfSqlState(s), DbErrorKind::GiveUp) << s;
}

TEST_F(StoreConnection, SyntaxErrorGivesUp) {
  try {
    store->exec("SELEKT 1");
    FAIL();
  } catch (const DbError& e) {
    EXPECT_EQ(e.kind(), DbErrorKind::GiveUp);
    EXPECT_EQ(e.sqlstate(), "42601");
  }
}

class StoreReconnect : public DbTest {
 protected:
  /// A store whose backend the test can find (and kill) by application_name.
  std::unique_ptr<Store> victim() {
    StoreOptions o;
    o.application_name = "victim-" + schema().substr(0, 40);
    return connectStore(o);
  }
  void kill() {
    const std::string name = "victim-" + schema().substr(0, 40);
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + name + "'");
    ASSERT_TRUE(waitUntil([&] {
      return queryInt("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + name + "'") == 0;
    }));
  }
};

TEST_F(StoreReconnect, ReadAfterATerminatedBackendReconnectsAndSucceeds) {
  auto s = victim();
  const auto id = put(job());
  ASSERT_TRUE(s->find(id));
  kill();
  EXPECT_EQ(s->find(id)->id, id);
  EXPECT_TRUE(s->connected());
}

TEST_F(StoreReconnect, CasBatchAfterATerminatedBackendIsAppliedOnce) {
  auto s = victim();
  const auto id = put(job());
  ASSERT_TRUE(pop("w"));
  s->complete({});  // prepared on the old session
  kill();
  const auto res = s->complete(std::vector<OwnedJob>{{id, "w"}});
  EXPECT_EQ(res.applied, std::vector<JobId>{id});
  EXPECT_TRUE(res.mismatched.empty());
  EXPECT_FALSE(exists(id));
}

TEST_F(StoreReconnect, ListenIsRenewedAfterAReconnect) {
  auto s = victim();
  s->listen();
  kill();
  ASSERT_TRUE(s->find(1) == std::nullopt);  // reconnects (and re-LISTENs)
  put(job());
  int got = 0;
  EXPECT_TRUE(waitUntil([&] {
    got += s->drainNotifications();
    return got > 0;
  }));
}

TEST_F(StoreReconnect, ConnectToANonexistentDatabaseIsConnectionLost) {
  try {
    Store::connect("postgresql:///no_such_db_hostq?host=/nonexistent-dir");
    FAIL();
  } catch (const DbError& e) {
    EXPECT_EQ(e.kind(), DbErrorKind::ConnectionLost);
  }
}

TEST_F(StoreConnection, StatementCountIncludesPreparesAndTransactions) {
  const auto n0 = store->statementsExecuted();
  put(job());  // prepare + execute
  EXPECT_EQ(store->statementsExecuted() - n0, 2u);
  put(job());
  EXPECT_EQ(store->statementsExecuted() - n0, 3u);
  store->enqueueMany(std::vector<NewJob>{job(), job()});  // BEGIN, 2 inserts, COMMIT
  EXPECT_EQ(store->statementsExecuted() - n0, 7u);
}

}  // namespace
}  // namespace hostq::test
