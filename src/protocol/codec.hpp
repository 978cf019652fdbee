#pragma once
// Frame encode/decode. A frame is an 8-byte little-endian header {u32 body_length, u16 type,
// u16 version} followed by body_length bytes. The same bytes are a socket frame and a
// shared-memory ring record, so a message can move between transports without re-encoding.
//
// Decoding never throws on bad input and never allocates more than the frame already claims
// within the configured limit: every length and count is checked against the bytes actually
// present before anything is reserved.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/messages.hpp"
#include "common/result.hpp"

namespace hostq::protocol {

inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::size_t kDefaultMaxFrameSize = std::size_t{4} << 20;
/// Bounds on counts, so a small frame cannot announce a huge container.
inline constexpr std::size_t kMaxConfigExtras = 64;
inline constexpr std::size_t kMaxAckIds = 65536;

struct Limits {
  /// Header + body. Checked against the header before a body buffer is sized.
  std::size_t max_frame_size = kDefaultMaxFrameSize;
};

struct FrameHeader {
  std::uint32_t body_length = 0;
  std::uint16_t type = 0;
  std::uint16_t version = 0;
  std::size_t frameSize() const noexcept { return kHeaderSize + body_length; }
};

enum class DecodeErrc : std::uint8_t {
  Truncated,      ///< fewer bytes than the header / the header's body length (stream: read more)
  FrameTooLarge,  ///< body_length makes the frame exceed Limits::max_frame_size
  UnknownType,
  BadVersion,
  OutOfBounds,    ///< a string length or count points past the end of the body
  BadEnum,
  BadBool,        ///< a bool or presence byte other than 0 or 1
  TooMany,        ///< a count above its fixed bound
  UnsortedKeys,   ///< WorkerConfig::extra keys not strictly increasing (covers duplicates)
  TrailingBytes,  ///< bytes left in the body (or after the frame) once every field is read
};

struct DecodeError {
  DecodeErrc code = DecodeErrc::Truncated;
  const char* field = "";   ///< static string naming the field being read
  std::size_t offset = 0;   ///< byte offset in the frame where it went wrong
  /// "unknown type 0x0042 at offset 4"-style text for logs and Error frames.
  std::string describe() const;
};

const char* errcName(DecodeErrc code) noexcept;

/// Validates the first kHeaderSize bytes: size limit, known type, our version. Truncated if
/// `bytes` is shorter than a header; `bytes` may hold more than one frame.
Result<FrameHeader, DecodeError> decodeHeader(std::span<const std::byte> bytes,
                                              const Limits& limits = {}) noexcept;

/// Decodes exactly one whole frame (header included); extra bytes after it are TrailingBytes.
Result<Message, DecodeError> decode(std::span<const std::byte> frame, const Limits& limits = {});

/// Decodes one whole frame into `reuse`. When `reuse` already holds the frame's type, its strings
/// and vectors keep their storage (the worker decodes a job per hand-off: once warm, this
/// allocates nothing). On failure `reuse` holds some valid but unspecified message.
std::optional<DecodeError> decodeInto(std::span<const std::byte> frame, Message& reuse,
                                      const Limits& limits = {});

/// Splits the next whole frame off the front of `rest` (a ring record may carry several: the
/// worker puts its result and its next Reserve in one record). Truncated: `rest` ends inside a
/// frame, which in a record (never in a stream) is the peer's fault.
Result<std::span<const std::byte>, DecodeError> nextFrame(std::span<const std::byte>& rest,
                                                          const Limits& limits = {}) noexcept;

/// Decodes a body whose header was already validated by decodeHeader.
Result<Message, DecodeError> decodeBody(const FrameHeader& header, std::span<const std::byte> body);

enum class EncodeErrc : std::uint8_t {
  BufferTooSmall,  ///< does not fit the given span (e.g. a ring slot): fall back to the socket
  Invalid,         ///< the message breaks a bound the decoder enforces (too many ids, > 4 GiB)
};

/// Header + body bytes of `m`. Cheap (no allocation); use it to pick ring vs socket.
std::size_t encodedSize(const Message& m) noexcept;

/// Writes the whole frame at the start of `out`; returns the bytes written. Leaves `out`
/// untouched on failure.
Result<std::size_t, EncodeErrc> encodeInto(const Message& m, std::span<std::byte> out) noexcept;

Result<std::vector<std::byte>, EncodeErrc> encode(const Message& m);

/// The acknowledgement of `jobs` split into ResultAcks whose frames fit `max_frame` bytes (a ring
/// record); each failure's decision rides in the ack of its id. `failures` are ids among `jobs`.
std::vector<ResultAck> chunkAck(const std::vector<JobId>& jobs, const std::vector<FailResult>& failures,
                                std::size_t max_frame);

}  // namespace hostq::protocol
