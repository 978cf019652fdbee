// libFuzzer entry for the frame decoder (built only with clang; see CMakeLists.txt here).
#include <cstddef>
#include <cstdint>

#include "fuzz/frame_decoder_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hostq::fuzz::checkFrameDecoder(data, size);
  return 0;
}
