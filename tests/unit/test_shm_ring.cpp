// RingWriter/RingReader over a RingLayout in private memory: the index arithmetic and the
// validation of everything read from the peer's side.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "shm/spsc_ring.hpp"

namespace hostq::shm {
namespace {

std::vector<std::byte> bytesOf(std::uint32_t seq, std::size_t len) {
  std::vector<std::byte> v(len);
  for (std::size_t i = 0; i < len; ++i) v[i] = static_cast<std::byte>((seq * 131 + i) & 0xff);
  return v;
}

class ShmRing : public ::testing::Test {
 protected:
  void SetUp() override {
    ring = std::make_unique<RequestRing>();
    writer.reset(ring.get(), 0, 0);
    reader.reset(ring.get(), 0, 0);
  }
  std::unique_ptr<RequestRing> ring;
  RingWriter<RequestRing> writer;
  RingReader<RequestRing> reader;
  std::array<std::byte, kRequestPayloadMax> out{};
  std::size_t len = 0;
};

TEST_F(ShmRing, PopFailsWhenEmpty) {
  EXPECT_EQ(reader.pop(out, len), PopResult::Empty);
  EXPECT_FALSE(reader.pending());
}

TEST_F(ShmRing, PushThenPopReturnsSameBytes) {
  const auto msg = bytesOf(7, 100);
  ASSERT_EQ(writer.push(msg), PushResult::Ok);
  EXPECT_TRUE(reader.pending());
  ASSERT_EQ(reader.pop(out, len), PopResult::Ok);
  ASSERT_EQ(len, msg.size());
  EXPECT_EQ(std::memcmp(out.data(), msg.data(), len), 0);
  EXPECT_EQ(reader.pop(out, len), PopResult::Empty);
}

TEST_F(ShmRing, EmptyAndMaximalRecordsRoundTrip) {
  ASSERT_EQ(writer.push({}), PushResult::Ok);
  const auto big = bytesOf(1, kRequestPayloadMax);
  ASSERT_EQ(writer.push(big), PushResult::Ok);
  ASSERT_EQ(reader.pop(out, len), PopResult::Ok);
  EXPECT_EQ(len, 0u);
  ASSERT_EQ(reader.pop(out, len), PopResult::Ok);
  EXPECT_EQ(len, kRequestPayloadMax);
  EXPECT_EQ(std::memcmp(out.data(), big.data(), len), 0);
}

TEST_F(ShmRing, PushFailsWhenFullAndSucceedsAfterPop) {
  for (std::uint32_t i = 0; i < kRequestRingCapacity; ++i) ASSERT_EQ(writer.push(bytesOf(i, 8)), PushResult::Ok);
  EXPECT_EQ(writer.push(bytesOf(99, 8)), PushResult::Full);
  ASSERT_EQ(reader.pop(out, len), PopResult::Ok);
  EXPECT_EQ(writer.push(bytesOf(99, 8)), PushResult::Ok);
  EXPECT_EQ(writer.push(bytesOf(100, 8)), PushResult::Full);
}

TEST_F(ShmRing, RecordTooLargeIsRejectedWithoutWriting) {
  const std::vector<std::byte> tooBig(kRequestPayloadMax + 1);
  EXPECT_EQ(writer.push(tooBig), PushResult::TooLarge);
  EXPECT_EQ(ring->tail.load(), 0u);
  EXPECT_EQ(reader.pop(out, len), PopResult::Empty);
}

TEST_F(ShmRing, BufferTooSmallLeavesRecordQueued) {
  ASSERT_EQ(writer.push(bytesOf(3, 50)), PushResult::Ok);
  std::array<std::byte, 10> small{};
  EXPECT_EQ(reader.pop(small, len), PopResult::BufferTooSmall);
  EXPECT_EQ(reader.pop(out, len), PopResult::Ok);
  EXPECT_EQ(len, 50u);
}

TEST_F(ShmRing, IndicesWrapAroundU32AndKeepOrder) {
  // Start near the u32 wrap so the free-running indices overflow during the test.
  const std::uint32_t start = 0xFFFFFFF0u;
  ring->tail.store(start);
  ring->head.store(start);
  writer.reset(ring.get(), start, start);
  reader.reset(ring.get(), start, start);
  std::uint32_t pushed = 0, popped = 0;
  for (int round = 0; round < 200; ++round) {
    const int n = 1 + round % static_cast<int>(kRequestRingCapacity);
    for (int i = 0; i < n; ++i)
      if (writer.push(bytesOf(pushed, 4 + pushed % 200)) == PushResult::Ok) ++pushed;
    while (reader.pop(out, len) == PopResult::Ok) {
      const auto want = bytesOf(popped, 4 + popped % 200);
      ASSERT_EQ(len, want.size());
      ASSERT_EQ(std::memcmp(out.data(), want.data(), len), 0) << "record " << popped;
      ++popped;
    }
  }
  EXPECT_EQ(pushed, popped);
  EXPECT_LT(ring->tail.load(), start) << "the test must cross the u32 wrap";
}

// --- Values a hostile peer can write straight into the layout.

TEST_F(ShmRing, TailBeyondCapacityIsCorrupt) {
  ring->tail.store(kRequestRingCapacity + 1);
  EXPECT_EQ(reader.pop(out, len), PopResult::Corrupt);
  EXPECT_TRUE(reader.pending()) << "pending() must lead the caller to pop() and see Corrupt";
}

TEST_F(ShmRing, TailBehindHeadIsCorrupt) {
  ring->tail.store(0xFFFFFFFFu);  // "minus one" record available
  EXPECT_EQ(reader.pop(out, len), PopResult::Corrupt);
}

TEST_F(ShmRing, LengthBeyondRecordIsCorruptForEveryHugeValue) {
  for (std::uint32_t bad : {std::uint32_t(kRequestPayloadMax + 1), 4096u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    SetUp();
    ASSERT_EQ(writer.push(bytesOf(1, 4)), PushResult::Ok);
    ring->records[0].length = bad;
    EXPECT_EQ(reader.pop(out, len), PopResult::Corrupt) << bad;
  }
}

TEST_F(ShmRing, ConsumerHeadAheadOfTailIsCorruptForProducer) {
  for (std::uint32_t i = 0; i < kRequestRingCapacity; ++i) ASSERT_EQ(writer.push(bytesOf(i, 1)), PushResult::Ok);
  ring->head.store(kRequestRingCapacity + 5);  // consumer claims to have read records never written
  EXPECT_EQ(writer.push(bytesOf(0, 1)), PushResult::Corrupt);
}

TEST_F(ShmRing, PeerOverwritingOurOwnIndexDoesNotMoveUs) {
  ASSERT_EQ(writer.push(bytesOf(0, 4)), PushResult::Ok);
  ASSERT_EQ(reader.pop(out, len), PopResult::Ok);
  ring->head.store(0);  // the producer side rewinds the consumer's published head
  EXPECT_EQ(reader.pop(out, len), PopResult::Empty) << "the reader trusts its private head";
  ring->tail.store(0);  // and the producer's published tail
  ASSERT_EQ(writer.push(bytesOf(1, 4)), PushResult::Ok);
  EXPECT_EQ(ring->tail.load(), 2u) << "the writer republishes from its private tail";
}

}  // namespace
}  // namespace hostq::shm
