// Held-lock batches on a real PostgreSQL: a claim that is a row lock of an open transaction
// (store/held_claims.hpp). What others see while it is open, what its close writes, and what
// happens to the claims when the transaction dies.
#include <set>

#include "store/held_claims.hpp"
#include "support/db_fixture.hpp"
#include "support/wait.hpp"

namespace hostq::test {
namespace {

using namespace std::chrono_literals;

TimePoint nowUtc() { return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()); }

class StoreHeld : public DbTest {
 protected:
  std::unique_ptr<Store> batchStore(const std::string& app = "hostq held test",
                                    std::chrono::milliseconds idleTimeout = 0ms) {
    StoreOptions o = storeOptions();
    o.schema = schema();
    o.application_name = app;
    o.idle_in_transaction_timeout = idleTimeout;
    o.reconnect_attempts = 1;
    return connectStore(o);
  }
  static ReserveRequest queue() { return ReserveRequest{}; }
  std::string lockedBy(JobId id) const {
    return query("SELECT locked_by FROM delayed_jobs WHERE id = " + std::to_string(id));
  }
  std::set<JobId> popAll(const std::string& worker) const {
    std::set<JobId> got;
    while (auto j = pop(worker)) got.insert(j->id);
    return got;
  }
};

TEST_F(StoreHeld, ClaimedRowsWriteNothingAndEveryOtherClaimerSkipsThem) {
  std::set<JobId> all;
  for (int i = 0; i < 10; ++i) all.insert(put(job()));
  auto conn = batchStore();
  auto& held = store::heldClaims(*conn);
  const auto claimed = held.openBatch(queue(), 4);
  ASSERT_EQ(claimed.size(), 4u);
  EXPECT_TRUE(held.batchOpen());
  std::set<JobId> mine;
  for (const auto& j : claimed) {
    mine.insert(j.id);
    EXPECT_EQ(lockedBy(j.id), "NULL") << "the claim must not write the lock";
  }
  // inst-jobs' own reservation (a written lock, FOR UPDATE SKIP LOCKED) on another connection:
  // it takes everything else and none of the claimed rows.
  const auto others = popAll("ruby:7");
  EXPECT_EQ(others.size(), 6u);
  for (JobId id : others) EXPECT_FALSE(mine.count(id)) << id;
  // And a second batch of ours gets nothing more either.
  auto conn2 = batchStore();
  EXPECT_TRUE(store::heldClaims(*conn2).openBatch(queue(), 10).empty());
}

// The claim reads its columns in binary (ClaimedRowReader): every field a worker is given must
// equal what the text decode of the same row says.
TEST_F(StoreHeld, AClaimedJobCarriesWhatAWorkerIsGivenExactly) {
  NewJob j = job("Claimed#perform");
  j.payload = "--- payload with\ttabs and ünïcode";
  j.priority = 7;
  j.max_attempts = 4;
  j.strand = "claimed-strand";
  j.run_at = nowUtc() - std::chrono::seconds(5);
  j.expires_at = nowUtc() + std::chrono::hours(1);
  const JobId id = put(j);
  const JobId plain = put(job("Plain#perform"));  // NULL strand and expires_at
  auto conn = batchStore();
  const auto claimed = store::heldClaims(*conn).openBatch(queue(), 10);
  ASSERT_EQ(claimed.size(), 2u);
  for (const Job& c : claimed) {
    const auto want = connectStore()->find(c.id);
    ASSERT_TRUE(want) << c.id;
    EXPECT_EQ(c.priority, want->priority);
    EXPECT_EQ(c.attempts, want->attempts);
    EXPECT_EQ(c.tag, want->tag);
    EXPECT_EQ(c.payload, want->payload);
    EXPECT_EQ(c.queue, want->queue);
    EXPECT_EQ(c.run_at, want->run_at);
    EXPECT_EQ(c.created_at, want->created_at);
    EXPECT_EQ(c.max_attempts, want->max_attempts);
    EXPECT_EQ(c.strand, want->strand);
    EXPECT_EQ(c.expires_at, want->expires_at);
    EXPECT_EQ(c.singleton, want->singleton);
    EXPECT_FALSE(c.locked_by.has_value());
  }
  const Job& first = claimed[0].id == id ? claimed[0] : claimed[1];
  EXPECT_EQ(first.payload, j.payload);
  EXPECT_EQ(first.max_attempts, 4);
  EXPECT_EQ(first.strand, "claimed-strand");
  EXPECT_EQ(first.run_at, *j.run_at);  // microseconds survive the trip
  const Job& second = claimed[0].id == plain ? claimed[0] : claimed[1];
  EXPECT_FALSE(second.strand.has_value());
  EXPECT_FALSE(second.expires_at.has_value());
}

TEST_F(StoreHeld, ClaimOrderIsPriorityThenRunAtThenIdAndSkipsSingletons) {
  std::vector<JobId> ids;
  for (int p : {5, 1, 3}) {
    auto j = job();
    j.priority = p;
    ids.push_back(put(j));
  }
  auto s = job();
  s.singleton = "only-one";
  s.priority = 0;
  const JobId single = put(s);
  auto conn = batchStore();
  const auto claimed = store::heldClaims(*conn).openBatch(queue(), 10);
  ASSERT_EQ(claimed.size(), 3u);
  EXPECT_EQ(claimed[0].id, ids[1]);
  EXPECT_EQ(claimed[1].id, ids[2]);
  EXPECT_EQ(claimed[2].id, ids[0]);
  // The singleton is left to the written-lock claim: its uniqueness is keyed on locked_by.
  ReserveRequest r;
  r.prefetch = 5;
  r.prefetch_owner = "prefetch:h";
  r.singletons_only = true;
  const auto res = store->reserve(r);
  ASSERT_EQ(res.prefetched.size(), 1u);
  EXPECT_EQ(res.prefetched[0].id, single);
}

// A claim that starts past a key (the last row of the server's open batches) takes only rows after
// it in claim order, ties on priority and run_at broken by id, and none before it.
TEST_F(StoreHeld, AClaimAfterAKeyTakesOnlyTheRowsPastItInClaimOrder) {
  const TimePoint at = nowUtc() - 10s;
  std::vector<JobId> ids;  // claim order: (1, at), (1, at), (1, at + 1 s), (2, at - 5 s)
  for (auto [p, t] : std::vector<std::pair<int, TimePoint>>{{1, at}, {1, at}, {1, at + 1s}, {2, at - 5s}}) {
    auto j = job();
    j.priority = p;
    j.run_at = t;
    ids.push_back(put(j));
  }
  auto conn = batchStore();
  ReserveRequest r = queue();
  r.after = ReserveRequest::Key{1, at, ids[0]};
  const auto claimed = store::heldClaims(*conn).openBatch(r, 10);
  ASSERT_EQ(claimed.size(), 3u);
  EXPECT_EQ(claimed[0].id, ids[1]) << "same priority and run_at, larger id";
  EXPECT_EQ(claimed[1].id, ids[2]) << "same priority, later run_at";
  EXPECT_EQ(claimed[2].id, ids[3]) << "larger priority, whatever its run_at";
  // The row before the key is free for a claim from the head.
  auto other = batchStore("hostq held test 2");
  const auto head = store::heldClaims(*other).openBatch(queue(), 10);
  ASSERT_EQ(head.size(), 1u);
  EXPECT_EQ(head[0].id, ids[0]);
}

TEST_F(StoreHeld, CloseDeletesCompletesReschedulesFailuresPromotesRunningAndReleasesTheRest) {
  std::vector<JobId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(put(job()));
  auto conn = batchStore();
  auto& held = store::heldClaims(*conn);
  ASSERT_EQ(held.openBatch(queue(), 4).size(), 4u);
  store::HeldClose c;
  c.completes = {ids[0]};
  c.failures = {Failure{ids[1], "ignored", "boom", std::nullopt, true, false}};
  c.promotions = {LockTransfer{ids[2], "", "host:42"}};
  const auto out = held.closeBatch(c);
  EXPECT_FALSE(held.batchOpen());
  EXPECT_EQ(out.completes.applied, std::vector<JobId>{ids[0]});
  ASSERT_EQ(out.failures.size(), 1u);
  EXPECT_EQ(out.failures[0].outcome, FailOutcome::MovedToFailedJobs);  // max_attempts 1
  EXPECT_EQ(out.promotions.applied, std::vector<JobId>{ids[2]});
  EXPECT_EQ(out.statements, 4);  // delete, fail, promote, COMMIT
  EXPECT_FALSE(exists(ids[0]));
  EXPECT_FALSE(exists(ids[1]));
  ASSERT_TRUE(store->findFailed(ids[1]));
  EXPECT_EQ(store->findFailed(ids[1])->last_error, "boom");
  EXPECT_EQ(lockedBy(ids[2]), "host:42");
  EXPECT_EQ(query("SELECT locked_at IS NOT NULL FROM delayed_jobs WHERE id = " + std::to_string(ids[2])), "t");
  // The promoted job is an ordinary inst-jobs lock now: listed as running.
  bool running = false;
  for (const auto& j : store->list(ListFlavor::Running, "")) running |= j.id == ids[2];
  EXPECT_TRUE(running);
  // The fourth was neither finished nor running: the COMMIT gave it back.
  EXPECT_EQ(popAll("w"), std::set<JobId>{ids[3]});
}

TEST_F(StoreHeld, ARetriedFailureCountsOneAttemptAndReschedules) {
  auto j = job();
  j.max_attempts = 3;
  const JobId id = put(j);
  auto conn = batchStore();
  auto& held = store::heldClaims(*conn);
  ASSERT_EQ(held.openBatch(queue(), 1).size(), 1u);
  store::HeldClose c;
  c.failures = {Failure{id, "", "try again", std::nullopt, true, false}};
  EXPECT_EQ(held.closeBatch(c).failures.at(0).outcome, FailOutcome::Rescheduled);
  EXPECT_EQ(queryInt("SELECT attempts FROM delayed_jobs WHERE id = " + std::to_string(id)), 1);
  EXPECT_EQ(lockedBy(id), "NULL");
  EXPECT_EQ(query("SELECT run_at > now() AT TIME ZONE 'UTC' FROM delayed_jobs WHERE id = " + std::to_string(id)), "t");
}

TEST_F(StoreHeld, AStrandsNextJobBecomesClaimableOnlyAfterTheCommit) {
  auto a = job(), b = job();
  a.strand = b.strand = "s";
  const JobId first = put(a), second = put(b);
  auto conn = batchStore();
  auto& held = store::heldClaims(*conn);
  const auto claimed = held.openBatch(queue(), 10);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, first);
  store::HeldClose c;
  c.completes = {first};
  held.closeBatch(c);
  EXPECT_TRUE(nextInStrand(second));
  const auto next = held.openBatch(queue(), 10);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, second);
}

TEST_F(StoreHeld, ATerminatedConnectionGivesItsClaimsBackAtOnceAndItsCloseFails) {
  std::set<JobId> all;
  for (int i = 0; i < 3; ++i) all.insert(put(job()));
  auto conn = batchStore("hostq held victim");
  auto& held = store::heldClaims(*conn);
  const auto claimed = held.openBatch(queue(), 3);
  ASSERT_EQ(claimed.size(), 3u);
  EXPECT_TRUE(popAll("w").empty());
  EXPECT_EQ(query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                  " WHERE application_name = 'hostq held victim'"),
            "1");
  EXPECT_TRUE(waitUntil([&] { return popAll("w2").size() == 3; }, 10s));
  store::HeldClose c;
  c.completes = {claimed[0].id};
  try {
    held.closeBatch(c);
    ADD_FAILURE() << "a close on a terminated connection must fail";
  } catch (const DbError& e) {
    EXPECT_TRUE(e.poisonsConnection()) << e.what();
  }
  EXPECT_FALSE(held.batchOpen());
  EXPECT_TRUE(exists(claimed[0].id)) << "nothing of a lost batch may be written";
}

TEST_F(StoreHeld, AnIdleOpenBatchIsEndedByTheServerAfterItsIdleTimeout) {
  const JobId id = put(job());
  auto conn = batchStore("hostq held idle", 300ms);
  ASSERT_EQ(store::heldClaims(*conn).openBatch(queue(), 1).size(), 1u);
  EXPECT_FALSE(pop("w"));
  // A server that stops without closing its connection (stopped, hung): PostgreSQL ends the
  // session, and the claim with it.
  EXPECT_TRUE(waitUntil([&] { return pop("w").has_value(); }, 10s));
  EXPECT_EQ(lockedBy(id), "w");
}

TEST_F(StoreHeld, AnEmptyExpectedOwnerCompletesOnlyAnUnlockedRow) {
  // The writer's path for the results of a lost batch: the row is free again, unless somebody
  // claimed it meanwhile.
  const JobId lockedId = put(job());
  const JobId taken = put(job());
  ASSERT_EQ(pop("other:1")->id, lockedId);  // the lowest id first
  const auto res = store->complete(std::vector<OwnedJob>{{lockedId, ""}, {taken, ""}});
  EXPECT_EQ(res.applied, std::vector<JobId>{taken});
  EXPECT_EQ(res.mismatched, std::vector<JobId>{lockedId});
  EXPECT_TRUE(exists(lockedId));
  EXPECT_FALSE(exists(taken));
}

TEST_F(StoreHeld, AnEmptyFromTransfersAnUnlockedRowButNotAnotherOwnersRow) {
  const JobId a = put(job());
  const JobId b = put(job());
  ASSERT_EQ(pop("other:1")->id, a);
  const auto res = store->transferLocks(std::vector<LockTransfer>{{a, "", "host:9"}, {b, "", "host:9"}});
  EXPECT_EQ(res.applied, std::vector<JobId>{b});
  EXPECT_EQ(lockedBy(a), "other:1");
  EXPECT_EQ(lockedBy(b), "host:9");
}

}  // namespace
}  // namespace hostq::test
