// ServerSegment / WorkerSegment in one process: creation, attach validation, slot lifecycle,
// and the server's handling of a slot a worker corrupted.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "shm/server_segment.hpp"
#include "shm/worker_segment.hpp"
#include "support/shm_raw_view.hpp"

namespace hostq::shm {
namespace {

using namespace std::chrono_literals;

std::span<const std::byte> asBytes(const char* s) { return std::as_bytes(std::span(s, std::strlen(s))); }

class ShmSegment : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = ServerSegment::create(4);
    ASSERT_TRUE(created) << toString(created.error().code);
    server.emplace(std::move(created).value());
    server->resetSlot(1, ::getpid());
  }
  std::optional<ServerSegment> server;
  std::array<std::byte, kReplyPayloadMax> buf{};
  std::size_t len = 0;
};

TEST_F(ShmSegment, CreateRejectsZeroAndHugeSlotCounts) {
  EXPECT_EQ(ServerSegment::create(0).error().code, SegmentErrc::BadSlot);
  EXPECT_EQ(ServerSegment::create(ServerSegment::kMaxSlots + 1).error().code, SegmentErrc::BadSlot);
}

TEST_F(ShmSegment, SegmentIsPrivateSealedAndSized) {
  struct stat st {};
  ASSERT_EQ(::fstat(server->fd(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), segmentBytes(4));
  EXPECT_NE(::ftruncate(server->fd(), 4096), 0) << "a worker must not be able to shrink it";
}

TEST_F(ShmSegment, GenerationDiffersBetweenSegments) {
  auto other = ServerSegment::create(1);
  ASSERT_TRUE(other);
  EXPECT_NE(other->generation(), server->generation());
  EXPECT_NE(server->generation(), 0u);
}

TEST_F(ShmSegment, RequestAndReplyRoundTrip) {
  auto w = WorkerSegment::attach(server->fd(), 1, server->generation());
  ASSERT_TRUE(w) << toString(w.error().code);
  ASSERT_EQ(w->pushRequest(asBytes("ping")), PushResult::Ok);
  EXPECT_TRUE(server->anyRequestPending());
  ASSERT_EQ(server->popRequest(1, buf, len), PopResult::Ok);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf.data()), len), "ping");
  ASSERT_EQ(server->pushReply(1, asBytes("pong")), PushResult::Ok);
  EXPECT_EQ(w->waitForReply(1s), WaitOutcome::Ready);
  ASSERT_EQ(w->popReply(buf, len), PopResult::Ok);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf.data()), len), "pong");
}

TEST_F(ShmSegment, ReplyTooLargeIsRejected) {
  std::vector<std::byte> big(kReplyPayloadMax + 1);
  EXPECT_EQ(server->pushReply(1, big), PushResult::TooLarge);
  std::vector<std::byte> max(kReplyPayloadMax);
  EXPECT_EQ(server->pushReply(1, max), PushResult::Ok);
}

TEST_F(ShmSegment, InactiveSlotIsClosedForTheServer) {
  EXPECT_EQ(server->popRequest(0, buf, len), PopResult::Closed);
  EXPECT_EQ(server->pushReply(0, asBytes("x")), PushResult::Closed);
  EXPECT_EQ(server->popRequest(99, buf, len), PopResult::Closed);
}

TEST_F(ShmSegment, ActiveSlotsTracksResetAndRelease) {
  server->resetSlot(3, ::getpid());
  server->resetSlot(0, ::getpid());
  auto a = server->activeSlots();
  EXPECT_EQ(std::vector<std::uint32_t>(a.begin(), a.end()).size(), 3u);
  server->releaseSlot(3);
  server->releaseSlot(3);  // idempotent
  EXPECT_FALSE(server->isActive(3));
  EXPECT_TRUE(server->isActive(0));
  EXPECT_TRUE(server->isActive(1));
  EXPECT_EQ(server->activeSlots().size(), 2u);
}

// --- attach validation

TEST_F(ShmSegment, AttachRejectsWrongGeneration) {
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 1, server->generation() + 1).error().code,
            SegmentErrc::BadGeneration);
}

TEST_F(ShmSegment, AttachRejectsSlotOutOfRange) {
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 4, server->generation()).error().code, SegmentErrc::BadSlot);
}

TEST_F(ShmSegment, AttachRejectsSlotNotResetForThisPid) {
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 0, server->generation()).error().code,
            SegmentErrc::SlotNotAssigned);
  server->resetSlot(2, ::getpid() + 1);
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 2, server->generation()).error().code,
            SegmentErrc::SlotNotAssigned);
}

TEST_F(ShmSegment, AttachRejectsBadMagicAndVersion) {
  test::ShmRawView raw(server->fd());
  ASSERT_TRUE(raw.ok());
  raw.header().magic ^= 1;
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 1, server->generation()).error().code, SegmentErrc::BadMagic);
  raw.header().magic ^= 1;
  raw.header().layoutVersion += 1;
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 1, server->generation()).error().code, SegmentErrc::BadVersion);
  raw.header().layoutVersion -= 1;
  raw.header().replyRecordSize = 512;
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 1, server->generation()).error().code, SegmentErrc::BadVersion);
}

TEST_F(ShmSegment, AttachRejectsSizeMismatch) {
  test::ShmRawView raw(server->fd());
  ASSERT_TRUE(raw.ok());
  raw.header().slotCapacity = 5;  // claims more slots than the file holds
  EXPECT_EQ(WorkerSegment::attach(server->fd(), 1, server->generation()).error().code, SegmentErrc::BadSize);
  raw.header().slotCapacity = 4;

  // A file shorter than the header.
  const int tiny = ::memfd_create("tiny", MFD_CLOEXEC);
  ASSERT_GE(tiny, 0);
  ASSERT_EQ(::ftruncate(tiny, 100), 0);
  EXPECT_EQ(WorkerSegment::attach(tiny, 0, 1).error().code, SegmentErrc::BadSize);
  ::close(tiny);

  // A copy of a valid header in a truncated file.
  const int cut = ::memfd_create("cut", MFD_CLOEXEC);
  ASSERT_GE(cut, 0);
  ASSERT_EQ(::ftruncate(cut, static_cast<off_t>(segmentBytes(3))), 0);
  ASSERT_EQ(::pwrite(cut, raw.base(), sizeof(SegmentHeader), 0), static_cast<ssize_t>(sizeof(SegmentHeader)));
  EXPECT_EQ(WorkerSegment::attach(cut, 1, server->generation()).error().code, SegmentErrc::BadSize);
  ::close(cut);
}

TEST_F(ShmSegment, AttachRejectsNonMemfd) {
  EXPECT_EQ(WorkerSegment::attach(-1, 0, 1).error().code, SegmentErrc::SystemError);
}

// --- request flags

TEST_F(ShmSegment, OnlyFlaggedActiveSlotsAreVisitedAndTheStartRotates) {
  server->resetSlot(0, ::getpid());
  server->resetSlot(2, ::getpid());
  std::vector<std::unique_ptr<WorkerSegment>> ws;
  for (std::uint32_t s : {0u, 1u, 2u}) {
    auto w = WorkerSegment::attach(server->fd(), s, server->generation());
    ASSERT_TRUE(w);
    ws.push_back(std::make_unique<WorkerSegment>(std::move(w).value()));
  }
  std::vector<std::uint32_t> slots;
  server->takePendingSlots(slots);
  EXPECT_TRUE(slots.empty());

  ASSERT_EQ(ws[0]->pushRequest(asBytes("a")), PushResult::Ok);
  ASSERT_EQ(ws[2]->pushRequest(asBytes("c")), PushResult::Ok);
  test::ShmRawView raw(server->fd());
  raw.header().pending[0].fetch_or(std::uint64_t{1} << 7);  // a lie about a slot nobody holds
  EXPECT_TRUE(server->anyRequestPending());
  server->takePendingSlots(slots);
  std::sort(slots.begin(), slots.end());
  EXPECT_EQ(slots, (std::vector<std::uint32_t>{0, 2}));
  EXPECT_FALSE(server->anyRequestPending()) << "a take clears the flags it read";
  slots.clear();
  server->takePendingSlots(slots);
  EXPECT_TRUE(slots.empty()) << "the records are still there, but nobody flagged them again";

  // Two passes over the same two flagged slots start at different slots.
  std::set<std::uint32_t> firsts;
  for (int pass = 0; pass < 2; ++pass) {
    server->markPending(0);
    server->markPending(2);
    slots.clear();
    server->takePendingSlots(slots);
    ASSERT_EQ(slots.size(), 2u);
    firsts.insert(slots.front());
  }
  EXPECT_EQ(firsts.size(), 2u);
  server->markPending(7);  // not active: no effect
  EXPECT_FALSE(server->anyRequestPending());
}

// --- corruption by a worker

TEST_F(ShmSegment, CorruptRequestIndexIsReportedAndSlotCanBeReset) {
  auto w = WorkerSegment::attach(server->fd(), 1, server->generation());
  ASSERT_TRUE(w);
  test::ShmRawView raw(server->fd());
  raw.slot(1).requests.tail.store(1000);
  EXPECT_FALSE(server->anyRequestPending()) << "a ring is looked at only once its slot is flagged";
  raw.header().pending[0].fetch_or(1u << 1);
  EXPECT_TRUE(server->anyRequestPending());
  EXPECT_EQ(server->popRequest(1, buf, len), PopResult::Corrupt);
  server->releaseSlot(1);
  EXPECT_TRUE(w->closed());
  EXPECT_EQ(w->waitForReply(10ms), WaitOutcome::Closed);

  server->resetSlot(1, ::getpid());
  auto again = WorkerSegment::attach(server->fd(), 1, server->generation());
  ASSERT_TRUE(again);
  ASSERT_EQ(again->pushRequest(asBytes("fresh")), PushResult::Ok);
  ASSERT_EQ(server->popRequest(1, buf, len), PopResult::Ok);
  EXPECT_EQ(len, 5u);
}

TEST_F(ShmSegment, CorruptRequestLengthIsReported) {
  auto w = WorkerSegment::attach(server->fd(), 1, server->generation());
  ASSERT_TRUE(w);
  ASSERT_EQ(w->pushRequest(asBytes("ok")), PushResult::Ok);
  test::ShmRawView raw(server->fd());
  raw.slot(1).requests.records[0].length = 0xFFFFFF00u;
  EXPECT_EQ(server->popRequest(1, buf, len), PopResult::Corrupt);
}

TEST_F(ShmSegment, CorruptReplyHeadIsReportedOnPush) {
  test::ShmRawView raw(server->fd());
  for (std::uint32_t i = 0; i < kReplyRingCapacity; ++i) ASSERT_EQ(server->pushReply(1, asBytes("r")), PushResult::Ok);
  raw.slot(1).replies.head.store(0x80000000u);
  EXPECT_EQ(server->pushReply(1, asBytes("r")), PushResult::Corrupt);
}

TEST_F(ShmSegment, GarbageEverywhereNeverReadsOutOfBounds) {
  // Fill the whole slot with pseudo-random bytes, then let the server poll it. Run under ASan
  // this also proves no access outside the mapping.
  test::ShmRawView raw(server->fd());
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  auto* p = reinterpret_cast<std::byte*>(&raw.slot(1));
  for (int round = 0; round < 200; ++round) {
    for (std::size_t i = 0; i < sizeof(SlotLayout); ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      p[i] = static_cast<std::byte>(x);
    }
    server->resetSlot(1, ::getpid());
    // resetSlot only rewrote the control words; scribble on the indices again.
    raw.slot(1).requests.tail.store(static_cast<std::uint32_t>(x));
    raw.slot(1).replies.head.store(static_cast<std::uint32_t>(x >> 32));
    for (int k = 0; k < 40; ++k) {
      if (server->popRequest(1, buf, len) != PopResult::Ok) break;
      ASSERT_LE(len, kRequestPayloadMax);
    }
    for (int k = 0; k < 40; ++k)
      if (server->pushReply(1, asBytes("r")) != PushResult::Ok) break;
  }
}

TEST_F(ShmSegment, RetireClosesWorkersAndReportsGenerationChange) {
  auto w = WorkerSegment::attach(server->fd(), 1, server->generation());
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->generationChanged());
  server->retire();
  EXPECT_TRUE(w->generationChanged());
  EXPECT_EQ(w->waitForReply(10ms), WaitOutcome::Closed);
}

TEST_F(ShmSegment, WorkerAttachSurvivesClosingTheFd) {
  const int dup = ::dup(server->fd());
  auto w = WorkerSegment::attach(dup, 1, server->generation());
  ::close(dup);
  ASSERT_TRUE(w);
  ASSERT_EQ(w->pushRequest(asBytes("x")), PushResult::Ok);
  EXPECT_EQ(server->popRequest(1, buf, len), PopResult::Ok);
}

}  // namespace
}  // namespace hostq::shm
