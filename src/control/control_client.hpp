#pragma once
// The worker / CLI side of the control socket. Blocking, plain POSIX (no Asio, no threads), so a
// freshly forked worker can use it before it has anything else running. Not thread-safe: an
// owner that lets a second thread use it (the worker's ServerSource, for a TERM abort) serializes
// every call itself.
//
// Long poll: send(Reserve) then receive() until the JobAssigned comes. receive() can be woken by
// an interrupt fd (eventfd or self-pipe written from a signal handler); if a Reserve is still
// outstanding when that happens the connection is closed, because its reply would otherwise
// arrive later and be taken as the answer to a different request.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/unique_fd.hpp"
#include "protocol/codec.hpp"
#include "protocol/messages.hpp"
#include "common/result.hpp"

namespace hostq::control {

inline constexpr std::chrono::milliseconds kForever{-1};

struct ClientError {
  enum class Kind {
    Connect,    ///< connect() failed: no server (ENOENT / ECONNREFUSED), permissions, timeout
    Timeout,    ///< no answer in time (hello / a blocked send)
    Refused,    ///< HelloRefused, or Error{reason} from the server
    Closed,     ///< EOF or EPIPE/ECONNRESET: the server is gone; reconnect with Backoff
    Protocol,   ///< the server sent something invalid or unexpected; the connection was reset
    Interrupted,
    NotConnected,
    Usage,      ///< misuse by the caller (e.g. a second Reserve while one is outstanding)
  };
  Kind kind = Kind::Closed;
  std::string detail;
  int err = 0;  ///< errno when one applies
  std::string describe() const;
};

using Status = Result<std::monostate, ClientError>;

/// The job must be for this worker and answer the outstanding request. Shared by the socket
/// client and the ring reader. Returns a reason when it is not acceptable.
std::optional<std::string> checkAssignment(const protocol::JobAssigned& job, const std::string& worker_name,
                                           std::optional<std::uint64_t> pending_request_seq);

struct ClientOptions {
  std::size_t max_frame_size = protocol::kDefaultMaxFrameSize;
  /// A send that cannot make progress for this long (server not reading) fails as Timeout.
  std::chrono::milliseconds send_timeout{10000};
};

class ControlClient {
 public:
  explicit ControlClient(ClientOptions options = {});
  ControlClient(ControlClient&&) noexcept;
  ControlClient& operator=(ControlClient&&) noexcept;
  ~ControlClient();

  /// Closes any previous connection first. Retries while the listen backlog is full, up to timeout.
  Status connect(const std::string& path, std::chrono::milliseconds timeout);

  struct HelloReply {
    protocol::HelloOk ok;
    UniqueFd segment_fd;  ///< valid iff ok.slot is set
  };
  /// Sends Hello and waits for HelloOk. HelloRefused / Error → Refused (connection closed).
  /// Remembers hello.name to check that later jobs are locked for this worker.
  Result<HelloReply, ClientError> hello(const protocol::Hello& hello, std::chrono::milliseconds timeout,
                                                  int interrupt_fd = -1);

  /// Writes one whole frame (blocks at most send_timeout). A Reserve becomes the outstanding
  /// request; only one may be outstanding at a time.
  Status send(const protocol::Message& message);

  struct Received {
    enum class Kind { Message, Timeout, Interrupted, Eof, Error };
    Kind kind = Kind::Timeout;
    std::optional<protocol::Message> message;
    ClientError error;  ///< for Error (and Eof: why)
  };
  /// Waits up to `timeout` (kForever: no limit) for one server → worker message. Interrupted when
  /// interrupt_fd becomes readable (it is not drained: the caller owns it). A JobAssigned that is
  /// not for this worker or not for the outstanding Reserve is a Protocol error and resets the
  /// connection. An Error{reason} frame is returned as a message; EOF follows it.
  Received receive(std::chrono::milliseconds timeout, int interrupt_fd = -1);

  /// For a Reserve sent through the shared-memory ring whose reply may come over the socket.
  void setPendingReserve(std::optional<std::uint64_t> request_seq) noexcept { m_pending = request_seq; }
  std::optional<std::uint64_t> pendingReserve() const noexcept { return m_pending; }

  bool connected() const noexcept { return m_fd.valid(); }
  int fd() const noexcept { return m_fd.get(); }
  /// Bytes already read off the socket and not yet returned by receive(). A single recvmsg can
  /// carry several frames (a ResultAck and the next JobAssigned, say), so a caller that waits for
  /// the fd to become readable must look here first or it sleeps on a reply it already holds.
  /// True when a whole frame (or a bad header, which receive() reports) is buffered.
  bool hasBuffered() const noexcept;
  /// Drops the connection and anything buffered or outstanding.
  void close() noexcept;

 private:
  enum class Fill { Data, Timeout, Interrupted, Eof, Error };
  Fill fill(std::chrono::steady_clock::time_point deadline, bool forever, int interrupt_fd, ClientError& err);
  std::optional<Result<protocol::Message, protocol::DecodeError>> takeFrame();

  ClientOptions m_opt;
  UniqueFd m_fd;
  std::vector<std::byte> m_rx;
  std::size_t m_rxLen = 0;
  std::vector<UniqueFd> m_fds;  ///< received with SCM_RIGHTS, waiting for their HelloOk
  std::string m_name;
  std::optional<std::uint64_t> m_pending;
  bool m_helloPhase = false;
};

}  // namespace hostq::control
