// libFuzzer entry for what the server does with a worker's request ring: the ring's bytes are
// the worker's to write, so the fuzzer writes all of them (indices, lengths, records) and the
// server side pops and decodes as scanSlots() does. Property: every pop is Ok with a length
// within the record, Empty, Corrupt or BufferTooSmall; an Ok record either decodes to a
// message that re-encodes to the same bytes or is refused; never a crash or an out-of-bounds
// access (ASan), and never more pops than the ring holds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "protocol/codec.hpp"
#include "shm/layout.hpp"
#include "shm/spsc_ring.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace hostq;
  using Ring = shm::RequestRing;
  if (size < 4) return 0;
  // The reader's private head comes from the input too: any position is legal for it.
  std::uint32_t head = 0;
  std::memcpy(&head, data, 4);
  data += 4;
  size -= 4;
  auto ring = std::make_unique<Ring>();
  auto* raw = reinterpret_cast<unsigned char*>(ring.get());
  std::memset(raw, 0, sizeof(Ring));
  std::memcpy(raw, data, std::min(size, sizeof(Ring)));
  shm::RingReader<Ring> reader;
  reader.reset(ring.get(), head, head);
  std::byte buf[shm::kRequestPayloadMax + 64];
  for (std::uint32_t n = 0;; ++n) {
    if (n > Ring::kCapacity) std::abort();  // popped more records than a ring can hold
    std::size_t len = 0;
    const auto r = reader.pop(std::span<std::byte>(buf, sizeof buf), len);
    if (r != shm::PopResult::Ok) break;
    if (len > shm::kRequestPayloadMax) std::abort();
    auto msg = protocol::decode(std::span<const std::byte>(buf, len));
    if (msg.ok()) {
      auto again = protocol::encode(msg.value());
      if (!again.ok() || again.value().size() != len || std::memcmp(again.value().data(), buf, len) != 0)
        std::abort();
    }
  }
  return 0;
}
