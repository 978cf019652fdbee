// The job ledger's state machines (src/server/job_ledger.hpp) without a database: every path a
// job takes through the server, and the calls from a wrong state that must be refused.
#include <gtest/gtest.h>

#include "server/job_ledger.hpp"

namespace hostq::server {
namespace {

using Claim = JobLedger::Claim;
using Work = JobLedger::Work;
using Release = JobLedger::Release;
const auto t0 = JobLedger::Clock::now();

TEST(JobLedger, ABatchJobIsWrittenUnderTheBatchAndOnlyThenForgotten) {
  JobLedger l;
  ASSERT_TRUE(l.handOutFromBatch(1, 7, 2, false, t0));
  EXPECT_FALSE(l.handOutFromBatch(1, 8, 2, false, t0)) << "one entry per job";
  const auto* e = l.find(1);
  EXPECT_EQ(e->claim, Claim::Batch);
  EXPECT_EQ(e->batch, 2);
  EXPECT_EQ(e->owner, "") << "a batch's row reads unlocked";
  EXPECT_EQ(l.writableOwner(1), std::optional<std::string>(""));
  EXPECT_TRUE(l.report(1));
  EXPECT_FALSE(l.report(1)) << "a duplicate report";
  EXPECT_EQ(l.find(1)->work, Work::Reported);
  EXPECT_FALSE(l.promoteSubmitted(1, "h:7")) << "a reported job is written, not promoted";
  l.forget(1);
  EXPECT_FALSE(l.holds(1));
}

TEST(JobLedger, ARunningBatchJobIsPromotedAndThenAnOrdinaryWrittenLock) {
  JobLedger l;
  l.handOutFromBatch(1, 7, 0, true, t0);
  ASSERT_TRUE(l.promoteSubmitted(1, "h:7"));
  EXPECT_EQ(l.find(1)->claim, Claim::Promoting);
  EXPECT_FALSE(l.writableOwner(1)) << "the owner is known only after the close";
  ASSERT_TRUE(l.promotionDone(1, true));
  const auto* e = l.find(1);
  EXPECT_EQ(e->claim, Claim::Written);
  EXPECT_EQ(e->owner, "h:7");
  EXPECT_EQ(e->batch, -1);
  EXPECT_TRUE(e->stranded);
  EXPECT_EQ(l.writableOwner(1), std::optional<std::string>("h:7"));
  EXPECT_FALSE(l.promotionDone(1, true)) << "only from Promoting";
}

TEST(JobLedger, ALostPromotionIsWrittenAgainByAnUncertainTransferFromUnlocked) {
  JobLedger l;
  l.handOutFromBatch(1, 7, 0, false, t0);
  l.promoteSubmitted(1, "h:7");
  ASSERT_TRUE(l.promotionDone(1, false));
  const auto* e = l.find(1);
  EXPECT_EQ(e->claim, Claim::Transfer);
  EXPECT_TRUE(e->uncertain);
  EXPECT_FALSE(l.fold(1)) << "an uncertain transfer is never folded away";
  EXPECT_FALSE(l.writableOwner(1));
  ASSERT_TRUE(l.transferSubmitted(1));
  // Mismatched: the in-doubt COMMIT had promoted it after all. The worker owns it either way.
  ASSERT_TRUE(l.transferDone(1, false));
  EXPECT_EQ(l.find(1)->owner, "h:7");
  EXPECT_EQ(l.find(1)->claim, Claim::Written);
}

TEST(JobLedger, ALostBatchLeavesItsReportedJobsUnderAnUnlockedRow) {
  JobLedger l;
  l.handOutFromBatch(1, 7, 0, false, t0);
  l.report(1);
  ASSERT_TRUE(l.batchLost(1));
  EXPECT_EQ(l.find(1)->claim, Claim::Written);
  EXPECT_EQ(l.writableOwner(1), std::optional<std::string>(""));
  EXPECT_FALSE(l.batchLost(1));
}

TEST(JobLedger, APrefetchedJobsTransferIsFoldedIntoAnEarlyResult) {
  JobLedger l;
  l.handOutPrefetched(1, 7, "prefetch:h", "h:7", false, t0);
  EXPECT_EQ(l.find(1)->claim, Claim::Transfer);
  EXPECT_EQ(l.find(1)->owner, "prefetch:h");
  l.report(1);
  ASSERT_TRUE(l.fold(1));
  EXPECT_EQ(l.writableOwner(1), std::optional<std::string>("prefetch:h")) << "written under the prefetch owner";
  EXPECT_FALSE(l.transferSubmitted(1)) << "the folded transfer is not written";
}

TEST(JobLedger, ATransferInFlightHoldsTheResultUntilItsOutcome) {
  JobLedger l;
  l.handOutPrefetched(1, 7, "prefetch:h", "h:7", false, t0);
  ASSERT_TRUE(l.transferSubmitted(1));
  EXPECT_FALSE(l.transferSubmitted(1)) << "an adoption's second CAS row changes nothing";
  l.report(1);
  EXPECT_FALSE(l.fold(1));
  EXPECT_FALSE(l.writableOwner(1));
  ASSERT_TRUE(l.transferDone(1, true));
  EXPECT_EQ(l.writableOwner(1), std::optional<std::string>("h:7"));
  EXPECT_FALSE(l.transferDone(1, true));
}

TEST(JobLedger, ALostPrefetchLockKeepsTheOwnerWeBelieved) {
  JobLedger l;
  l.handOutPrefetched(1, 7, "prefetch:h", "h:7", false, t0);
  l.transferSubmitted(1);
  l.transferDone(1, false);
  EXPECT_EQ(l.find(1)->owner, "prefetch:h") << "the result's CAS will then report the mismatch";
}

TEST(JobLedger, AnAdoptedResultWaitsForItsTransfer) {
  JobLedger l;
  ASSERT_TRUE(l.adopt(1, 7, "h:7", Work::Running));
  EXPECT_FALSE(l.adopt(1, 7, "h:7", Work::Running)) << "a reconnect to the same server";
  l.report(1);
  EXPECT_TRUE(l.find(1)->uncertain);
  EXPECT_FALSE(l.writableOwner(1));
  l.transferSubmitted(1);
  l.transferDone(1, true);
  EXPECT_EQ(l.writableOwner(1), std::optional<std::string>("h:7"));
  EXPECT_FALSE(l.find(1)->uncertain);
}

TEST(JobLedger, UndeliveredJobsAreGivenBackAccordingToTheirClaim) {
  JobLedger l;
  std::string owner;
  l.handOutFromBatch(1, 7, 0, false, t0);
  EXPECT_EQ(l.undeliver(1, owner), Release::Forget) << "the batch's COMMIT gives the row back";
  EXPECT_FALSE(l.holds(1));

  l.handOutAssigned(2, 7, "h:7", false, t0);
  EXPECT_EQ(l.undeliver(2, owner), Release::UnlockNow);
  EXPECT_EQ(owner, "h:7");
  EXPECT_FALSE(l.holds(2));

  l.handOutPrefetched(3, 7, "prefetch:h", "h:7", false, t0);
  l.transferSubmitted(3);
  EXPECT_EQ(l.undeliver(3, owner), Release::UnlockLater) << "whose lock to undo: the transfer's outcome says";
  EXPECT_EQ(l.find(3)->work, Work::Undelivered);
  EXPECT_EQ(l.find(3)->client, kNoClient);
  l.transferDone(3, true);
  EXPECT_EQ(l.find(3)->owner, "h:7");

  l.handOutFromBatch(4, 7, 0, false, t0);
  l.promoteSubmitted(4, "h:7");
  EXPECT_EQ(l.undeliver(4, owner), Release::UnlockLater);

  l.handOutAssigned(5, 7, "h:7", false, t0);
  l.report(5);
  EXPECT_FALSE(l.undeliver(5, owner)) << "a job with a result was delivered";
}

TEST(JobLedger, AnUndeliveredJobThatReportsAfterAllIsReported) {
  JobLedger l;
  std::string owner;
  l.handOutPrefetched(1, 7, "prefetch:h", "h:7", false, t0);
  l.transferSubmitted(1);
  l.undeliver(1, owner);
  EXPECT_TRUE(l.report(1));
  EXPECT_EQ(l.find(1)->work, Work::Reported);
}

TEST(JobLedger, AWorkerThatLeavesOrphansItsEntries) {
  JobLedger l;
  l.handOutAssigned(1, 7, "h:7", false, t0);
  l.handOutAssigned(2, 8, "h:8", false, t0);
  l.orphan(7);
  EXPECT_EQ(l.find(1)->client, kNoClient);
  EXPECT_EQ(l.find(2)->client, 8u);
}

TEST(JobLedger, StatesHaveNames) {
  EXPECT_STREQ(toString(Claim::Promoting), "promoting");
  EXPECT_STREQ(toString(Work::Undelivered), "undelivered");
}

}  // namespace
}  // namespace hostq::server
