#pragma once
// The server side of the control socket: one Unix stream connection per worker for the worker's
// whole life. I/O only: job state belongs to the owner (the reserver loop), which hears about
// connections through ControlHandler and answers through the thread-safe calls below.
//
// Threading: the server runs its own io thread (one Asio io_context, one thread), started by
// start() and joined by stop(). Handler callbacks run on that thread, one at a time, in the
// order bytes arrived on each connection; they must not block (enqueue and wake your loop).
// No Asio type appears here, so the owner's code does not pull Asio in.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "protocol/codec.hpp"
#include "protocol/messages.hpp"

namespace boost::asio {
class io_context;
}

namespace hostq::control {

/// Never reused within one ControlServer, so a stale id from a dropped connection is harmless.
using ConnId = std::uint64_t;

/// From SO_PEERCRED at accept time (kernel-verified, not what the peer claims in Hello).
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  /// First valid frame of a connection from an allowed peer. Answer with acceptHello or refuse.
  /// Frames the worker sends after its Hello (e.g. resent results) arrive as onMessage in order,
  /// possibly before the answer went out.
  virtual void onHello(ConnId id, protocol::Hello hello, PeerCred peer) = 0;
  /// Any later worker → server message (Reserve, Complete, Fail, Heartbeat, FetchPayload,
  /// StatsRequest, Goodbye).
  virtual void onMessage(ConnId id, protocol::Message message) = 0;
  /// Exactly once for every connection that got onHello, whatever ended it (EOF, bad frame,
  /// write failure, close(), stop()). Anything sent to it that was not acknowledged must be
  /// treated as not delivered, including messages passed to send() before this arrived.
  virtual void onDisconnect(ConnId id, std::string reason) = 0;
};

struct ControlServerOptions {
  std::string socket_path;
  /// Header + body, both directions. The client must use the same (default) limit.
  std::size_t max_frame_size = protocol::kDefaultMaxFrameSize;
  /// A frame that has started arriving must be complete within this (slow-loris guard). An idle
  /// connection with nothing buffered is never timed out: a long poll may wait for hours.
  std::chrono::milliseconds frame_timeout{5000};
  /// A new connection must send its Hello within this.
  std::chrono::milliseconds hello_timeout{10000};
  /// A peer that leaves our writes unread for this long (socket buffer full) is dropped.
  std::chrono::milliseconds write_timeout{10000};
  std::size_t max_write_queue_bytes = std::size_t{64} << 20;
  /// Connections beyond this are accepted, told why, and closed.
  std::size_t max_connections = 1024;
  /// Peers with our uid (and root) are always allowed. With a gid, peers whose primary gid is
  /// this group are allowed too, and the socket becomes 0660 owned by that group (else 0600).
  std::optional<gid_t> allowed_gid;
};

/// Setup failure: bad path, directory not ours, or a live server already owns the socket.
class ControlSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ControlServer {
 public:
  /// Binds and listens (peers may connect and wait in the backlog) but calls no handler until
  /// start(), so the owner can finish wiring itself to this object first. Throws ControlSetupError.
  /// The directory of socket_path is created 0700 (0750 with allowed_gid) if missing; if it
  /// exists it must be owned by us and not writable by group/others. A socket file left by a
  /// dead server is replaced; a live server's socket (or its lock) makes this throw.
  ControlServer(ControlServerOptions options, ControlHandler& handler);
  ~ControlServer();  ///< stop()

  /// Starts the io thread: accepting, reading, handler callbacks. Once only.
  void start();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  /// Closes every connection (each hello'd one gets onDisconnect "server stopping"), joins the io
  /// thread, removes the socket file if it is still ours. Idempotent. Not from a handler callback.
  void stop();

  // All of these are thread-safe, return at once, and are ignored for an unknown or closed id.
  // Encoding happens on the calling thread; a message that cannot be encoded within
  // max_frame_size closes the connection (so the owner hears onDisconnect and unlocks).

  /// Sends HelloOk. If segment_fd >= 0 it is dup'ed here (the caller keeps its own) and sent
  /// with SCM_RIGHTS on the HelloOk frame, after anything queued before it.
  void acceptHello(ConnId id, protocol::HelloOk ok, int segment_fd = -1);
  /// Sends HelloRefused{reason} and closes once it is written.
  void refuse(ConnId id, std::string reason);
  void send(ConnId id, protocol::Message message);
  /// Sends Error{reason} and closes once it is written.
  void close(ConnId id, std::string reason);
  /// To every connection whose Hello was accepted.
  void broadcast(protocol::Notice notice);

  /// Open connections (all states). Approximate when read from another thread.
  std::size_t connectionCount() const noexcept;
  const std::string& socketPath() const noexcept;
  /// The socket file of a dead server was replaced at start: this is a restart, and that
  /// server's workers may be reconnecting with jobs and results to report.
  bool replacedStaleSocket() const noexcept;
  /// The io thread's context, for other socket I/O of the server that must not get a thread of
  /// its own (the HTTP endpoint). Whatever runs on it must not block, like the handlers.
  boost::asio::io_context& ioContext() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace hostq::control
