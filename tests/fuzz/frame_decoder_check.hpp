#pragma once
// The property both fuzzers check: any bytes either decode to a message that re-encodes to the
// same bytes, or are refused with an error; never a crash, hang, or out-of-bounds read. The input
// is also read as a stream of frames, the way the socket reader consumes it.
#include <cstdlib>
#include <cstring>
#include <span>

#include "protocol/codec.hpp"

namespace hostq::fuzz {

inline void checkFrameDecoder(const std::uint8_t* data, std::size_t size) {
  using namespace hostq::protocol;
  // A small limit keeps the fuzzer in interesting sizes; the size check is the same code path.
  const Limits limits{64 * 1024};
  std::span<const std::byte> all(reinterpret_cast<const std::byte*>(data), size);

  auto whole = decode(all, limits);
  if (whole.ok()) {
    auto again = encode(whole.value());
    if (!again.ok() || again.value().size() != size ||
        std::memcmp(again.value().data(), data, size) != 0)
      std::abort();  // decode accepted bytes that are not the canonical encoding
  }

  std::size_t pos = 0;
  while (pos < all.size()) {
    auto rest = all.subspan(pos);
    auto h = decodeHeader(rest, limits);
    if (!h.ok()) break;
    if (rest.size() < h->frameSize()) break;
    auto m = decodeBody(*h, rest.subspan(kHeaderSize, h->body_length));
    if (m.ok() && encodedSize(m.value()) != h->frameSize()) std::abort();
    pos += h->frameSize();
  }
}

}  // namespace hostq::fuzz
