// The libFuzzer property (tests/fuzz/frame_decoder_check.hpp) over a few hundred thousand seeded
// random and mutated inputs, so builds without clang exercise the decoder on hostile bytes too.
#include <gtest/gtest.h>

#include <random>

#include "fuzz/frame_decoder_check.hpp"
#include "protocol/codec.hpp"
#include "support/protocol_samples.hpp"

namespace hostq::protocol {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::vector<Bytes> seeds() {
  std::vector<Bytes> out;
  for (const auto& m : test::sampleMessages()) {
    auto e = encode(m).value();
    out.emplace_back(reinterpret_cast<const std::uint8_t*>(e.data()),
                     reinterpret_cast<const std::uint8_t*>(e.data()) + e.size());
  }
  return out;
}

Bytes mutate(Bytes b, const std::vector<Bytes>& pool, std::mt19937_64& rng) {
  auto pick = [&](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < rounds; ++i) {
    switch (rng() % 8) {
      case 0: if (!b.empty()) b[pick(b.size())] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break;
      case 1: if (!b.empty()) b[pick(b.size())] = static_cast<std::uint8_t>(rng()); break;
      case 2: b.resize(pick(b.size() + 1)); break;
      case 3: b.insert(b.begin() + static_cast<std::ptrdiff_t>(pick(b.size() + 1)), static_cast<std::uint8_t>(rng())); break;
      case 4: {  // an interesting value into a length/count-sized slot
        static const std::uint32_t vals[] = {0, 1, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000,
                                             65536, 65537, 0x7FFFFFFF, 0xFFFFFFFF, 4u << 20};
        if (b.size() >= 4) {
          std::size_t at = pick(b.size() - 3);
          std::uint32_t v = vals[rng() % std::size(vals)];
          for (int k = 0; k < 4; ++k) b[at + k] = static_cast<std::uint8_t>(v >> (8 * k));
        }
        break;
      }
      case 5: {  // fix up the header length to the real body size, so mutations reach the body
        if (b.size() >= kHeaderSize) {
          auto len = static_cast<std::uint32_t>(b.size() - kHeaderSize);
          for (int k = 0; k < 4; ++k) b[k] = static_cast<std::uint8_t>(len >> (8 * k));
        }
        break;
      }
      case 6: {  // splice another frame on
        const Bytes& o = pool[pick(pool.size())];
        b.insert(b.end(), o.begin(), o.end());
        break;
      }
      default: {  // change the type id to a neighbour (a body read as the wrong message)
        if (b.size() >= 6) {
          static const std::uint8_t types[] = {1, 2, 3, 4, 5, 6, 7, 8, 0x81, 0x82, 0x83,
                                               0x84, 0x85, 0x86, 0x87, 0x88};
          b[4] = types[rng() % std::size(types)];
          b[5] = 0;
        }
      }
    }
  }
  return b;
}

TEST(ProtocolFuzzSmoke, SeededMutationsNeverCrashAndRoundTripWhenAccepted) {
  std::mt19937_64 rng(0x5EED'C0DE);
  const auto pool = seeds();
  std::size_t accepted = 0;
  constexpr int kIterations = 300'000;
  for (int i = 0; i < kIterations; ++i) {
    Bytes in;
    if (i % 10 == 0) {
      in.resize(rng() % 64);
      for (auto& x : in) x = static_cast<std::uint8_t>(rng());
    } else {
      in = mutate(pool[rng() % pool.size()], pool, rng);
    }
    fuzz::checkFrameDecoder(in.data(), in.size());
    auto r = decode(std::span(reinterpret_cast<const std::byte*>(in.data()), in.size()));
    accepted += r.ok();
  }
  // Sanity: the mutator is neither all-garbage nor all-valid.
  EXPECT_GT(accepted, 1000u);
  EXPECT_LT(accepted, static_cast<std::size_t>(kIterations));
}

}  // namespace
}  // namespace hostq::protocol
