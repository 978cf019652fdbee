// Frame codec: round trips, and every kind of bad input refused with the right error.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <set>

#include "protocol/codec.hpp"
#include "protocol/job_convert.hpp"
#include "support/protocol_samples.hpp"

// Counting the largest single allocation proves that sizes are checked before allocating.
// g++ 12 flags malloc/free inside a replaced operator new/delete once inlined into callers
// (a false positive: both replacements are in this file and match each other).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<std::size_t> g_largestAlloc{0};
}
void* operator new(std::size_t n) {
  std::size_t prev = g_largestAlloc.load(std::memory_order_relaxed);
  while (n > prev && !g_largestAlloc.compare_exchange_weak(prev, n, std::memory_order_relaxed)) {
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace hostq::protocol {
namespace {

using Bytes = std::vector<std::byte>;

Bytes enc(const Message& m) {
  auto r = encode(m);
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

void putU32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.at(at + i) = std::byte((v >> (8 * i)) & 0xFF);
}
void putU16(Bytes& b, std::size_t at, std::uint16_t v) {
  b.at(at) = std::byte(v & 0xFF);
  b.at(at + 1) = std::byte(v >> 8);
}

DecodeErrc errOf(const Bytes& b, Limits lim = {}) {
  auto r = decode(b, lim);
  EXPECT_FALSE(r.ok()) << "decoded a frame that should be refused";
  return r.ok() ? DecodeErrc::Truncated : r.error().code;
}

TEST(ProtocolCodec, RoundTripsEveryMessageType) {
  std::set<MessageType> seen;
  for (const auto& m : test::sampleMessages()) {
    Bytes b = enc(m);
    ASSERT_EQ(b.size(), encodedSize(m));
    auto r = decode(b);
    ASSERT_TRUE(r.ok()) << typeName(typeOf(m)) << ": " << r.error().describe();
    EXPECT_EQ(r.value(), m) << typeName(typeOf(m));
    seen.insert(typeOf(m));
  }
  EXPECT_EQ(seen.size(), std::variant_size_v<Message>);
}

TEST(ProtocolCodec, HeaderIsLittleEndianLengthTypeVersion) {
  Bytes b = enc(Complete{0x0102030405060708, 9});
  ASSERT_EQ(b.size(), 8u + 16u);
  Bytes head(b.begin(), b.begin() + 8);
  EXPECT_EQ(head, (Bytes{std::byte{16}, {}, {}, {}, std::byte{0x03}, {}, std::byte{kProtocolVersion}, {}}));
  EXPECT_EQ(b[8], std::byte{0x08});
  EXPECT_EQ(b[15], std::byte{0x01});
}

TEST(ProtocolCodec, EncodeIntoFailsCleanlyWhenTheSpanIsTooSmall) {
  for (const auto& m : test::sampleMessages()) {
    std::size_t need = encodedSize(m);
    Bytes small(need - 1, std::byte{0xAA});
    auto r = encodeInto(m, small);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), EncodeErrc::BufferTooSmall);
    for (auto x : small) ASSERT_EQ(x, std::byte{0xAA}) << "encodeInto wrote before failing";
    Bytes exact(need);
    auto ok = encodeInto(m, exact);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok.value(), need);
  }
}

TEST(ProtocolCodec, HotPathRequestsFitAShmRequestRecord) {
  // 256-byte request records minus the shm layer's 4-byte length prefix.
  EXPECT_LE(encodedSize(Reserve{~0ull, -1}), 252u);
  EXPECT_LE(encodedSize(Complete{-1, ~0ull}), 252u);
  EXPECT_LE(encodedSize(Fail{1, 2, std::string(200, 'e'), true, false, 0}), 252u);
  EXPECT_GT(encodedSize(Fail{1, 2, std::string(300, 'e'), true, false, 0}), 252u);
}

// The server sizes a reply record of several jobs before it takes them: the size it computes must
// be the frame's, with or without the optional strings, for the worker name it will carry.
TEST(ProtocolCodec, JobAssignedFrameSizeIsTheEncodedSize) {
  Job plain;
  plain.id = 42;
  plain.tag = "hostq.noop";
  plain.queue = "queue";
  Job full = plain;
  full.payload = std::string(300, 'p');
  full.strand = "s";
  full.singleton = "one";
  full.max_attempts = 3;
  full.expires_at = TimePoint{std::chrono::microseconds{123}};
  full.locked_by = "stale:1";  // replaced by the name given
  for (const Job& j : {plain, full}) {
    for (const std::string name : {"", "host:12345"}) {
      Job named = j;
      named.locked_by = name;
      JobAssigned a;
      assignJobAssigned(named, 7, a);
      EXPECT_EQ(jobAssignedFrameSize(j, name), encodedSize(Message(a))) << j.payload.size() << " " << name;
    }
  }
}

TEST(ProtocolCodec, EveryTruncatedFrameIsRefused) {
  for (const auto& m : test::sampleMessages()) {
    Bytes b = enc(m);
    for (std::size_t n = 0; n < b.size(); ++n) {
      Bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
      ASSERT_EQ(errOf(cut), DecodeErrc::Truncated) << typeName(typeOf(m)) << " cut at " << n;
    }
  }
}

TEST(ProtocolCodec, BodyShorterThanItsFieldsIsOutOfBounds) {
  // The header claims a smaller body than the fields need: fields must not read past it.
  for (const auto& m : test::sampleMessages()) {
    Bytes b = enc(m);
    std::size_t body = b.size() - kHeaderSize;
    if (body == 0) continue;
    for (std::size_t n = 0; n < body; ++n) {
      Bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(kHeaderSize + n));
      putU32(cut, 0, static_cast<std::uint32_t>(n));
      auto r = decode(cut);
      ASSERT_FALSE(r.ok()) << typeName(typeOf(m)) << " body cut at " << n;
      ASSERT_EQ(r.error().code, DecodeErrc::OutOfBounds) << r.error().describe();
    }
  }
}

TEST(ProtocolCodec, OversizeLengthIsRefusedFromTheHeaderAloneWithoutAllocating) {
  Bytes b = enc(Heartbeat{});
  putU32(b, 0, 0xFFFFFFFF);
  g_largestAlloc = 0;
  auto h = decodeHeader(b);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().code, DecodeErrc::FrameTooLarge);
  EXPECT_EQ(g_largestAlloc.load(), 0u);

  // The limit is on header + body and is configurable.
  Bytes p = enc(Payload{1, std::string(100, 'x')});
  Limits lim{p.size()};
  EXPECT_TRUE(decode(p, lim).ok());
  lim.max_frame_size = p.size() - 1;
  EXPECT_EQ(errOf(p, lim), DecodeErrc::FrameTooLarge);
  // Size is checked before type and version: an oversize garbage header says "too large".
  Bytes g(8, std::byte{0xFF});
  EXPECT_EQ(errOf(g), DecodeErrc::FrameTooLarge);
}

TEST(ProtocolCodec, HugeCountsInASmallFrameDoNotAllocate) {
  Bytes b = enc(ResultAck{{1}});
  putU32(b, kHeaderSize, static_cast<std::uint32_t>(kMaxAckIds));  // count, with 8 bytes of ids
  g_largestAlloc = 0;
  EXPECT_EQ(errOf(b), DecodeErrc::OutOfBounds);
  EXPECT_LT(g_largestAlloc.load(), 1024u);
  putU32(b, kHeaderSize, static_cast<std::uint32_t>(kMaxAckIds + 1));
  EXPECT_EQ(errOf(b), DecodeErrc::TooMany);

  Bytes s = enc(Error{"x"});
  putU32(s, kHeaderSize, 0xFFFFFFF0);  // string length
  g_largestAlloc = 0;
  EXPECT_EQ(errOf(s), DecodeErrc::OutOfBounds);
  EXPECT_LT(g_largestAlloc.load(), 1024u);
}

TEST(ProtocolCodec, UnknownTypesAreRefused) {
  for (std::uint16_t t : {0x0000, 0x0009, 0x0080, 0x0089, 0x7FFF, 0xFFFF}) {
    Bytes b = enc(Heartbeat{});
    putU16(b, 4, t);
    EXPECT_EQ(errOf(b), DecodeErrc::UnknownType) << t;
  }
}

TEST(ProtocolCodec, WrongVersionIsRefused) {
  for (std::uint16_t v : {0, kProtocolVersion + 1, 0xFFFF}) {
    Bytes b = enc(Reserve{1, 2});
    putU16(b, 6, static_cast<std::uint16_t>(v));
    EXPECT_EQ(errOf(b), DecodeErrc::BadVersion) << v;
  }
}

TEST(ProtocolCodec, StringLengthsPointingOutsideTheBodyAreRefused) {
  Bytes b = enc(Fail{1, 2, "abc", true, false, 0});
  // error string length sits after job_id (8) and seq (8)
  for (std::uint32_t len : {4u, 5u, 1000u, 0xFFFFFFFFu}) {
    putU32(b, kHeaderSize + 16, len);
    auto r = decode(b);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.error().code == DecodeErrc::OutOfBounds) << len << " " << r.error().describe();
  }
  putU32(b, kHeaderSize + 16, 2);  // shorter string: the rest misparses → some error, never a crash
  EXPECT_FALSE(decode(b).ok());
}

TEST(ProtocolCodec, EnumsAndBoolsOutOfRangeAreRefused) {
  Bytes h = enc(Hello{"h:1", 1, kProtocolVersion, WorkerConfig{}, Transport::Shm});
  h.back() = std::byte{2};  // transport is the last field
  EXPECT_EQ(errOf(h), DecodeErrc::BadEnum);

  Bytes n = enc(Notice{NoticeKind::Stop, ""});
  n[kHeaderSize] = std::byte{7};
  EXPECT_EQ(errOf(n), DecodeErrc::BadEnum);

  Bytes f = enc(Fail{1, 2, "", true, false, 0});
  f[kHeaderSize + 20] = std::byte{2};  // count_attempt after job_id, seq, empty string
  EXPECT_EQ(errOf(f), DecodeErrc::BadBool);

  Bytes ok = enc(HelloOk{std::nullopt, 1, 2});
  ok[kHeaderSize] = std::byte{3};  // slot presence byte
  EXPECT_EQ(errOf(ok), DecodeErrc::BadBool);
}

TEST(ProtocolCodec, WorkerConfigExtrasAreBoundedAndUnique) {
  Hello hello{"h:1", 1, kProtocolVersion, WorkerConfig{}, Transport::Shm};
  hello.config.queue = "";
  hello.config.extra = {{"a", "1"}, {"b", "2"}};
  Bytes b = enc(hello);
  auto find = [&](char c) {
    for (std::size_t i = kHeaderSize; i < b.size(); ++i)
      if (b[i] == std::byte(c)) return i;
    return std::size_t{0};
  };
  Bytes dup = b;
  dup[find('b')] = std::byte{'a'};
  EXPECT_EQ(errOf(dup), DecodeErrc::UnsortedKeys);
  Bytes unsorted = b;  // "b" before "a": legal as a map, but not the one canonical encoding
  unsorted[find('a')] = std::byte{'b'};
  unsorted[find('b')] = std::byte{'a'};
  EXPECT_EQ(errOf(unsorted), DecodeErrc::UnsortedKeys);

  for (std::size_t i = 0; i <= kMaxConfigExtras; ++i) hello.config.extra[std::to_string(i)] = "";
  auto r = encode(hello);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), EncodeErrc::Invalid);

  // A count above the bound on the wire is refused before reading the pairs.
  Bytes c = enc(Hello{"h:1", 1, kProtocolVersion, WorkerConfig{}, Transport::Shm});
  // name(4+3) pid(4) version(2) queue(4+5 "queue") min max workers(12) → extra count
  std::size_t at = kHeaderSize + 7 + 4 + 2 + 9 + 12;
  putU16(c, at, static_cast<std::uint16_t>(kMaxConfigExtras + 1));
  EXPECT_EQ(errOf(c), DecodeErrc::TooMany);
}

TEST(ProtocolCodec, TrailingBytesAreRefused) {
  Bytes b = enc(Complete{1, 2});
  b.push_back(std::byte{0});
  EXPECT_EQ(errOf(b), DecodeErrc::TrailingBytes);  // after the frame
  putU32(b, 0, 17);
  EXPECT_EQ(errOf(b), DecodeErrc::TrailingBytes);  // inside the body
}

TEST(ProtocolCodec, EncodeRefusesWhatDecodeWouldRefuse) {
  ResultAck ack;
  ack.job_ids.resize(kMaxAckIds + 1);
  auto r = encode(ack);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), EncodeErrc::Invalid);
  ack.job_ids.resize(kMaxAckIds);
  EXPECT_TRUE(decode(enc(ack)).ok());
}

// The server's acks must each fit a reply ring record, with every failure's decision in the
// ack of its id.
TEST(ProtocolCodec, ChunkedAcksFitARecordAndKeepEachDecisionWithItsId) {
  std::vector<hostq::JobId> ids;
  std::vector<hostq::FailResult> failures;
  for (hostq::JobId id = 1; id <= 500; ++id) {
    ids.push_back(id);
    if (id % 3 == 0) failures.push_back(hostq::FailResult{id, hostq::FailOutcome::Rescheduled, 1, std::nullopt});
  }
  constexpr std::size_t kRecord = 1020;
  const auto acks = chunkAck(ids, failures, kRecord);
  ASSERT_GT(acks.size(), 1u);
  std::vector<hostq::JobId> seen;
  std::size_t decisions = 0;
  for (const auto& a : acks) {
    EXPECT_LE(encodedSize(Message(a)), kRecord);
    EXPECT_FALSE(a.job_ids.empty());
    for (const auto& f : a.failures) {
      EXPECT_NE(std::find(a.job_ids.begin(), a.job_ids.end(), f.id), a.job_ids.end()) << f.id;
      ++decisions;
    }
    seen.insert(seen.end(), a.job_ids.begin(), a.job_ids.end());
  }
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(decisions, failures.size());
  EXPECT_TRUE(chunkAck({}, {}, kRecord).empty());
}

TEST(ProtocolCodec, DirectionTable) {
  EXPECT_TRUE(isWorkerToServer(MessageType::Reserve));
  EXPECT_TRUE(isWorkerToServer(MessageType::Goodbye));
  EXPECT_FALSE(isWorkerToServer(MessageType::JobAssigned));
  EXPECT_FALSE(isWorkerToServer(MessageType::Error));
}

}  // namespace
}  // namespace hostq::protocol

namespace hostq::protocol {
namespace {

TEST(ProtocolCodec, NextFrameSplitsARecordOfSeveralFrames) {
  Bytes rec = enc(Complete{7, 1});
  const Bytes second = enc(Reserve{2, 99});
  rec.insert(rec.end(), second.begin(), second.end());
  std::span<const std::byte> rest(rec);
  auto a = nextFrame(rest);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(decode(a.value()).value(), Message(Complete{7, 1}));
  auto b = nextFrame(rest);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(decode(b.value()).value(), Message(Reserve{2, 99}));
  EXPECT_TRUE(rest.empty());

  // A record that ends inside its second frame, or holds a stray byte, is refused.
  for (std::size_t cut : {std::size_t{1}, kHeaderSize - 1, kHeaderSize, second.size() - 1}) {
    Bytes bad = enc(Complete{7, 1});
    bad.insert(bad.end(), second.begin(), second.begin() + static_cast<std::ptrdiff_t>(cut));
    std::span<const std::byte> r(bad);
    ASSERT_TRUE(nextFrame(r).ok());
    auto f = nextFrame(r);
    ASSERT_FALSE(f.ok()) << "cut at " << cut;
    EXPECT_EQ(f.error().code, DecodeErrc::Truncated);
  }
}

TEST(ProtocolCodec, DecodeIntoReusesTheBuffersOfTheSameType) {
  JobAssigned big;
  big.id = 1;
  big.tag = "Tag#perform";
  big.payload = std::string(300, 'p');
  big.strand = std::string(40, 's');
  Message reuse;
  ASSERT_FALSE(decodeInto(enc(big), reuse).has_value());
  EXPECT_EQ(reuse, Message(big));
  const char* payloadBuffer = std::get<JobAssigned>(reuse).payload.data();
  const char* strandBuffer = std::get<JobAssigned>(reuse).strand->data();

  JobAssigned small = big;
  small.id = 2;
  small.payload = "short";
  small.strand = "other strand";
  ASSERT_FALSE(decodeInto(enc(small), reuse).has_value());
  EXPECT_EQ(reuse, Message(small));
  EXPECT_EQ(std::get<JobAssigned>(reuse).payload.data(), payloadBuffer);
  EXPECT_EQ(std::get<JobAssigned>(reuse).strand->data(), strandBuffer);

  // Another type replaces it; a bad frame is refused like decode() refuses it.
  ASSERT_FALSE(decodeInto(enc(ResultAck{{4, 5}}), reuse).has_value());
  EXPECT_EQ(reuse, Message(ResultAck{{4, 5}}));
  Bytes trailing = enc(Complete{1, 2});
  trailing.push_back(std::byte{0});
  auto err = decodeInto(trailing, reuse);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, DecodeErrc::TrailingBytes);
}

}  // namespace
}  // namespace hostq::protocol
