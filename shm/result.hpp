#pragma once
// Outcomes of the shm operations. No exceptions on this path: every call returns one of these.
#include <cstdint>

#include "common/result.hpp"

namespace hostq::shm {

enum class PushResult : std::uint8_t {
  Ok,
  Full,      ///< ring full; nothing written, retry after the peer consumes
  TooLarge,  ///< payload exceeds the record capacity; nothing written
  Corrupt,   ///< the peer's index read from shm is out of range: drop the peer
  Closed,    ///< slot not active / segment retired
};

enum class PopResult : std::uint8_t {
  Ok,
  Empty,
  BufferTooSmall,  ///< record is valid but longer than `out`; not consumed
  Corrupt,         ///< index or length read from shm out of range: drop the peer
  Closed,
};

enum class WaitOutcome : std::uint8_t {
  Ready,        ///< something may be ready: pop (may still find nothing after a spurious wake)
  TimedOut,     ///< caller's timeout passed with nothing ready
  Interrupted,  ///< EINTR: let the caller look at its signal/shutdown flags
  Closed,       ///< worker side: slot released or segment retired by the server
};

enum class SegmentErrc : std::uint8_t {
  SystemError,      ///< a syscall failed; see Error::sysErrno
  BadSize,          ///< fstat size does not match the header's geometry
  BadMagic,
  BadVersion,       ///< layout version or record/ring geometry differs from this build
  BadGeneration,    ///< segment belongs to another server start
  BadSlot,          ///< slot >= capacity, or slot count out of range on create
  SlotNotAssigned,  ///< slot not Active or reset for another pid
};

const char* toString(SegmentErrc) noexcept;
const char* toString(PushResult) noexcept;
const char* toString(PopResult) noexcept;
const char* toString(WaitOutcome) noexcept;

struct SegmentError {
  SegmentErrc code;
  int sysErrno = 0;
};

template <class T>
using Result = hostq::Result<T, SegmentError>;

}  // namespace hostq::shm
