#include "shm/result.hpp"

namespace hostq::shm {

const char* toString(SegmentErrc e) noexcept {
  switch (e) {
    case SegmentErrc::SystemError: return "system error";
    case SegmentErrc::BadSize: return "segment size does not match its header";
    case SegmentErrc::BadMagic: return "not a hostq segment (bad magic)";
    case SegmentErrc::BadVersion: return "segment layout version or geometry differs from this build";
    case SegmentErrc::BadGeneration: return "segment belongs to another server generation";
    case SegmentErrc::BadSlot: return "slot index out of range";
    case SegmentErrc::SlotNotAssigned: return "slot not assigned to this process";
  }
  return "?";
}

const char* toString(PushResult r) noexcept {
  switch (r) {
    case PushResult::Ok: return "Ok";
    case PushResult::Full: return "Full";
    case PushResult::TooLarge: return "TooLarge";
    case PushResult::Corrupt: return "Corrupt";
    case PushResult::Closed: return "Closed";
  }
  return "?";
}

const char* toString(PopResult r) noexcept {
  switch (r) {
    case PopResult::Ok: return "Ok";
    case PopResult::Empty: return "Empty";
    case PopResult::BufferTooSmall: return "BufferTooSmall";
    case PopResult::Corrupt: return "Corrupt";
    case PopResult::Closed: return "Closed";
  }
  return "?";
}

const char* toString(WaitOutcome w) noexcept {
  switch (w) {
    case WaitOutcome::Ready: return "Ready";
    case WaitOutcome::TimedOut: return "TimedOut";
    case WaitOutcome::Interrupted: return "Interrupted";
    case WaitOutcome::Closed: return "Closed";
  }
  return "?";
}

}  // namespace hostq::shm
