#include "control/control_server.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/unique_fd.hpp"

namespace hostq::control {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;
using namespace std::chrono_literals;

namespace {

std::string errnoText(int e) { return std::string(std::strerror(e)) + " (errno " + std::to_string(e) + ")"; }

[[noreturn]] void setupFail(const std::string& what) { throw ControlSetupError("control socket: " + what); }

/// Connects to `path` to learn whether a server is alive behind it. 0 = alive, else errno.
int probeSocket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return 0;
  // EAGAIN: the listener exists and its backlog is full, which means alive.
  return errno == EAGAIN ? 0 : errno;
}

void prepareDirectory(const std::filesystem::path& dir, const ControlServerOptions& o) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) setupFail("cannot stat " + dir.string() + ": " + errnoText(errno));
    mode_t mode = o.allowed_gid ? 0750 : 0700;
    if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST)
      setupFail("cannot create " + dir.string() + ": " + errnoText(errno));
    if (o.allowed_gid && ::chown(dir.c_str(), static_cast<uid_t>(-1), *o.allowed_gid) != 0)
      setupFail("cannot give " + dir.string() + " to gid " + std::to_string(*o.allowed_gid) + ": " + errnoText(errno));
    if (::stat(dir.c_str(), &st) != 0) setupFail("cannot stat " + dir.string() + ": " + errnoText(errno));
  }
  // Anyone who can write the directory can swap the socket file under us or impersonate us.
  if (!S_ISDIR(st.st_mode)) setupFail(dir.string() + " is not a directory");
  if (st.st_uid != ::geteuid())
    setupFail(dir.string() + " is owned by uid " + std::to_string(st.st_uid) + ", not by us (uid " +
              std::to_string(::geteuid()) + ")");
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    setupFail(dir.string() + " is writable by group or others (mode " +
              fmt::format("{:o}", st.st_mode & 07777) + ")");
}

}  // namespace

// ---------------------------------------------------------------------------------------------

// Handlers capture the Impl by raw pointer: it outlives the io thread (stop() joins before the
// unique_ptr is released), and handlers still queued after io.stop() are destroyed unrun.
struct ControlServer::Impl {
  struct Outgoing {
    std::vector<std::byte> bytes;
    std::size_t off = 0;
    UniqueFd fd;  // sent with the first byte of `bytes`
  };

  enum class State { AwaitHello, Hello, Open, Closed };

  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(ConnId id, stream::socket s, PeerCred c)
        : id(id), sock(std::move(s)), cred(c), frameTimer(sock.get_executor()),
          helloTimer(sock.get_executor()), writeTimer(sock.get_executor()) {}

    ConnId id;
    stream::socket sock;
    PeerCred cred;
    State state = State::AwaitHello;
    bool helloDelivered = false;
    bool saidGoodbye = false;
    std::string name;  // from Hello, for logs

    std::vector<std::byte> rx = std::vector<std::byte>(kInitialRx);
    std::size_t rxLen = 0;
    asio::steady_timer frameTimer, helloTimer, writeTimer;
    std::uint64_t frameTimerGen = 0;
    bool frameTimerArmed = false;

    std::deque<Outgoing> outq;
    std::size_t queuedBytes = 0;
    bool waitingWritable = false;
    bool writeTimerArmed = false;
    std::optional<std::string> closeAfterFlush;

    static constexpr std::size_t kInitialRx = 16 * 1024;

    std::string who() const {
      std::string s = "conn " + std::to_string(id);
      if (!name.empty()) s += " '" + name + "'";
      return s + " (pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid) + ")";
    }
  };

  Impl(ControlServerOptions o, ControlHandler& h) : opt(std::move(o)), handler(h), acceptor(io) {
    limits.max_frame_size = opt.max_frame_size;
  }

  ControlServerOptions opt;
  ControlHandler& handler;
  protocol::Limits limits;
  asio::io_context io;
  stream::acceptor acceptor;
  std::optional<asio::steady_timer> acceptRetry;
  std::thread thread;
  std::unordered_map<ConnId, std::shared_ptr<Conn>> conns;
  std::atomic<std::size_t> connCount{0};
  ConnId nextId = 1;
  UniqueFd lockFd;
  bool replacedStale = false;
  dev_t sockDev = 0;
  ino_t sockIno = 0;
  bool stopped = false;

  // ---- setup (caller's thread, before the io thread exists) ----

  void bindSocket() {
    const std::string& path = opt.socket_path;
    if (path.empty()) setupFail("no socket path configured");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
      setupFail(path + " is longer than a Unix socket path may be (" +
                std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes)");
    std::filesystem::path p(path);
    prepareDirectory(p.has_parent_path() ? p.parent_path() : std::filesystem::path("."), opt);

    // The lock closes the race of two servers starting together: both would see a stale file,
    // both unlink, both bind. Whoever holds the flock owns the path; the kernel drops it on death.
    std::string lockPath = path + ".lock";
    lockFd.reset(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!lockFd) setupFail("cannot open " + lockPath + ": " + errnoText(errno));
    if (::flock(lockFd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) setupFail("another server holds " + lockPath + "; not starting a second one on " + path);
      setupFail("cannot lock " + lockPath + ": " + errnoText(errno));
    }
    if (::ftruncate(lockFd.get(), 0) == 0) {
      std::string pid = std::to_string(::getpid()) + "\n";
      [[maybe_unused]] auto n = ::write(lockFd.get(), pid.data(), pid.size());
    }

    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) setupFail(path + " exists and is not a socket; not removing it");
      int probe = probeSocket(path);
      if (probe == 0) setupFail("a live server is listening on " + path + "; refusing to take it over");
      if (probe != ECONNREFUSED && probe != ENOENT)
        setupFail("cannot tell whether " + path + " is alive: " + errnoText(probe));
      if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        setupFail("cannot remove stale socket " + path + ": " + errnoText(errno));
      spdlog::info("control: replaced stale socket {} (connect: {})", path, errnoText(probe));
      replacedStale = true;
    } else if (errno != ENOENT) {
      setupFail("cannot stat " + path + ": " + errnoText(errno));
    }

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) setupFail("socket(): " + errnoText(errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      setupFail("bind " + path + ": " + errnoText(errno));
    // Tighten the mode before listen(): until then nobody can connect, whatever the umask was.
    mode_t mode = opt.allowed_gid ? 0660 : 0600;
    if (opt.allowed_gid && ::chown(path.c_str(), static_cast<uid_t>(-1), *opt.allowed_gid) != 0)
      setupFail("chown " + path + ": " + errnoText(errno));
    if (::chmod(path.c_str(), mode) != 0) setupFail("chmod " + path + ": " + errnoText(errno));
    if (::listen(fd.get(), SOMAXCONN) != 0) setupFail("listen " + path + ": " + errnoText(errno));
    if (::stat(path.c_str(), &st) == 0) {
      sockDev = st.st_dev;
      sockIno = st.st_ino;
    }
    boost::system::error_code ec;
    acceptor.assign(stream(), fd.release(), ec);
    if (ec) setupFail("assign: " + ec.message());
  }

  // ---- accept ----

  bool peerAllowed(const PeerCred& c) const {
    return c.uid == ::geteuid() || c.uid == 0 || (opt.allowed_gid && c.gid == *opt.allowed_gid);
  }

  void startAccept() {
    acceptor.async_accept([this](boost::system::error_code ec, stream::socket s) {
      onAccept(ec, std::move(s));
    });
  }

  void onAccept(boost::system::error_code ec, stream::socket s) {
    if (stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE and friends: retrying at once would spin; the backlog holds the peers meanwhile.
      spdlog::error("control: accept failed: {}; retrying in 100 ms", ec.message());
      acceptRetry.emplace(io, 100ms);
      acceptRetry->async_wait([this](boost::system::error_code e) {
        if (!e && !stopped) startAccept();
      });
      return;
    }
    startAccept();

    PeerCred cred;
    ucred uc{};
    socklen_t len = sizeof uc;
    if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) {
      spdlog::warn("control: dropping new connection: SO_PEERCRED failed: {}", errnoText(errno));
      return;
    }
    cred = PeerCred{uc.pid, uc.uid, uc.gid};
    if (!peerAllowed(cred)) {
      std::string reason = "peer uid " + std::to_string(cred.uid) + " gid " + std::to_string(cred.gid) +
                           " is not allowed (server uid " + std::to_string(::geteuid()) +
                           (opt.allowed_gid ? ", group " + std::to_string(*opt.allowed_gid) : std::string()) + ")";
      spdlog::warn("control: refusing connection from pid {}: {}", cred.pid, reason);
      bestEffortError(s, reason);
      return;
    }
    if (conns.size() >= opt.max_connections) {
      std::string reason = "too many connections (max " + std::to_string(opt.max_connections) + ")";
      spdlog::warn("control: refusing connection from pid {} uid {}: {}", cred.pid, cred.uid, reason);
      bestEffortError(s, reason);
      return;
    }
    boost::system::error_code ignored;
    s.non_blocking(true, ignored);
    auto c = std::make_shared<Conn>(nextId++, std::move(s), cred);
    conns.emplace(c->id, c);
    connCount.store(conns.size(), std::memory_order_relaxed);
    spdlog::debug("control: accepted {}", c->who());
    c->helloTimer.expires_after(opt.hello_timeout);
    c->helloTimer.async_wait([this, w = std::weak_ptr<Conn>(c)](boost::system::error_code e) {
      auto c = w.lock();
      if (e || !c || c->state != State::AwaitHello) return;
      drop(*c, "no Hello within " + std::to_string(opt.hello_timeout.count()) + " ms");
    });
    startRead(c);
  }

  /// Tells a peer we will not talk to why, without waiting for it: one non-blocking write.
  void bestEffortError(stream::socket& s, const std::string& reason) {
    auto bytes = protocol::encode(protocol::Error{reason});
    if (bytes) {
      [[maybe_unused]] auto n = ::send(s.native_handle(), bytes->data(), bytes->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    boost::system::error_code ignored;
    s.close(ignored);
  }

  // ---- read side ----

  void startRead(const std::shared_ptr<Conn>& c) {
    auto buf = asio::buffer(c->rx.data() + c->rxLen, c->rx.size() - c->rxLen);
    c->sock.async_read_some(buf, [this, c](boost::system::error_code ec, std::size_t n) {
      if (c->state == State::Closed) return;
      if (ec) {
        if (ec == asio::error::eof) {
          std::string why = c->saidGoodbye ? "goodbye" : "peer closed the connection";
          if (c->rxLen) why += " in the middle of a frame (" + std::to_string(c->rxLen) + " bytes buffered)";
          drop(*c, why, c->saidGoodbye && c->rxLen == 0 ? Level::Info : Level::Warn, false);
        } else {
          drop(*c, "read failed: " + ec.message(), Level::Warn, false);
        }
        return;
      }
      c->rxLen += n;
      if (parse(*c)) startRead(c);
    });
  }

  /// Returns false once the connection was dropped.
  bool parse(Conn& c) {
    std::size_t off = 0;
    bool consumed = false;
    while (c.rxLen - off >= protocol::kHeaderSize) {
      std::span<const std::byte> avail(c.rx.data() + off, c.rxLen - off);
      auto h = protocol::decodeHeader(avail, limits);
      if (!h) return drop(c, "bad frame header: " + h.error().describe());
      if (avail.size() < h->frameSize()) {
        // Size was validated against max_frame_size, so this allocation is bounded.
        if (c.rx.size() - off < h->frameSize()) {
          compact(c, off);
          off = 0;
          c.rx.resize(h->frameSize());
        }
        break;
      }
      auto m = protocol::decodeBody(*h, avail.subspan(protocol::kHeaderSize, h->body_length));
      if (!m) return drop(c, "malformed " + std::string(protocol::typeName(static_cast<protocol::MessageType>(h->type))) +
                                 " frame: " + m.error().describe());
      off += h->frameSize();
      consumed = true;
      if (!dispatch(c, std::move(m).value())) return false;
    }
    compact(c, off);
    if (c.rxLen == 0 && c.rx.size() > 4 * Conn::kInitialRx) c.rx.resize(Conn::kInitialRx);  // one big frame must not pin memory
    if (c.rxLen == 0) {
      disarmFrameTimer(c);
    } else if (consumed || !c.frameTimerArmed) {
      armFrameTimer(c);  // a new frame started: its own full allowance
    }
    return true;
  }

  static void compact(Conn& c, std::size_t off) {
    if (off == 0) return;
    std::memmove(c.rx.data(), c.rx.data() + off, c.rxLen - off);
    c.rxLen -= off;
  }

  void armFrameTimer(Conn& c) {
    c.frameTimerArmed = true;
    auto gen = ++c.frameTimerGen;
    c.frameTimer.expires_after(opt.frame_timeout);
    c.frameTimer.async_wait([this, w = c.weak_from_this(), gen](boost::system::error_code e) {
      auto c = w.lock();
      if (e || !c || c->state == State::Closed || !c->frameTimerArmed || c->frameTimerGen != gen) return;
      drop(*c, "frame not completed within " + std::to_string(opt.frame_timeout.count()) + " ms (" +
                   std::to_string(c->rxLen) + " bytes of it received)");
    });
  }
  static void disarmFrameTimer(Conn& c) {
    if (!c.frameTimerArmed) return;
    c.frameTimerArmed = false;
    ++c.frameTimerGen;
    c.frameTimer.cancel();
  }

  bool dispatch(Conn& c, protocol::Message m) {
    using protocol::MessageType;
    MessageType t = protocol::typeOf(m);
    if (!protocol::isWorkerToServer(t))
      return drop(c, std::string("a worker may not send ") + protocol::typeName(t));
    if (c.state == State::AwaitHello) {
      if (t != MessageType::Hello) return drop(c, std::string("expected Hello, got ") + protocol::typeName(t));
      auto& hello = std::get<protocol::Hello>(m);
      if (hello.protocol_version != protocol::kProtocolVersion)
        return drop(c, "Hello announces protocol version " + std::to_string(hello.protocol_version) +
                           ", this server speaks " + std::to_string(protocol::kProtocolVersion));
      c.helloTimer.cancel();
      c.state = State::Hello;
      c.name = hello.name;
      c.helloDelivered = true;
      spdlog::debug("control: Hello from {}", c.who());
      handler.onHello(c.id, std::move(hello), c.cred);
      return c.state != State::Closed;
    }
    if (t == MessageType::Hello) return drop(c, "second Hello on one connection");
    if (t == MessageType::Goodbye) c.saidGoodbye = true;
    handler.onMessage(c.id, std::move(m));
    return c.state != State::Closed;
  }

  // ---- write side ----

  void enqueue(Conn& c, std::vector<std::byte> bytes, UniqueFd fd = UniqueFd()) {
    if (c.state == State::Closed || c.closeAfterFlush) return;
    if (c.queuedBytes + bytes.size() > opt.max_write_queue_bytes) {
      drop(c, "peer is not reading: over " + std::to_string(opt.max_write_queue_bytes) + " bytes queued");
      return;
    }
    c.queuedBytes += bytes.size();
    c.outq.push_back(Outgoing{std::move(bytes), 0, std::move(fd)});
    if (!c.waitingWritable) flush(c);
  }

  void flush(Conn& c) {
    constexpr std::size_t kMaxIov = 64;
    while (!c.outq.empty()) {
      iovec iov[kMaxIov];
      std::size_t n = 0;
      // A frame carrying an fd goes in its own sendmsg, so the fd arrives no later than the end
      // of that frame and never rides on an unrelated one.
      for (auto& o : c.outq) {
        if (n == kMaxIov || (n > 0 && o.fd)) break;
        iov[n++] = iovec{o.bytes.data() + o.off, o.bytes.size() - o.off};
        if (o.fd) break;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      if (c.outq.front().fd) {
        std::memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        int fd = c.outq.front().fd.get();
        std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
      }
      // MSG_NOSIGNAL: a dead peer is an EPIPE to handle, never a SIGPIPE that kills the server.
      ssize_t sent = ::sendmsg(c.sock.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return waitWritable(c);
        drop(c, "write failed: " + errnoText(errno), Level::Warn, false);
        return;
      }
      c.outq.front().fd.reset();  // delivered with these bytes (even if only part of them went)
      auto left = static_cast<std::size_t>(sent);
      c.queuedBytes -= left;
      while (left > 0) {
        auto& o = c.outq.front();
        std::size_t take = std::min(left, o.bytes.size() - o.off);
        o.off += take;
        left -= take;
        if (o.off == o.bytes.size()) c.outq.pop_front();
      }
    }
    if (c.writeTimerArmed) {
      c.writeTimerArmed = false;
      c.writeTimer.cancel();
    }
    if (c.closeAfterFlush) {
      std::string why = *c.closeAfterFlush;
      drop(c, why, Level::Info, false);
    }
  }

  void waitWritable(Conn& c) {
    c.waitingWritable = true;
    if (!c.writeTimerArmed) {
      c.writeTimerArmed = true;
      c.writeTimer.expires_after(opt.write_timeout);
      c.writeTimer.async_wait([this, w = c.weak_from_this()](boost::system::error_code e) {
        auto c = w.lock();
        if (e || !c || c->state == State::Closed || !c->writeTimerArmed) return;
        drop(*c, "peer has not read for " + std::to_string(opt.write_timeout.count()) + " ms (" +
                     std::to_string(c->queuedBytes) + " bytes pending)", Level::Warn, false);
      });
    }
    c.sock.async_wait(stream::socket::wait_write, [this, self = c.shared_from_this()](boost::system::error_code e) {
      self->waitingWritable = false;
      if (self->state == State::Closed) return;
      if (e) {
        drop(*self, "waiting to write failed: " + e.message(), Level::Warn, false);
        return;
      }
      flush(*self);
    });
  }

  // ---- closing ----

  enum class Level { Info, Warn };

  /// Ends a connection. For a protocol violation we first try to tell the peer why; the attempt
  /// never blocks. Always returns false so callers can `return drop(...)`.
  bool drop(Conn& c, const std::string& reason, Level level = Level::Warn, bool tellPeer = true) {
    if (c.state == State::Closed) return false;
    if (level == Level::Warn) spdlog::warn("control: dropping {}: {}", c.who(), reason);
    else spdlog::info("control: closing {}: {}", c.who(), reason);
    if (tellPeer && c.outq.empty()) {
      auto bytes = protocol::encode(protocol::Error{reason});
      if (bytes) {
        [[maybe_unused]] auto n = ::send(c.sock.native_handle(), bytes->data(), bytes->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    }
    c.state = State::Closed;
    c.outq.clear();
    c.frameTimer.cancel();
    c.helloTimer.cancel();
    c.writeTimer.cancel();
    boost::system::error_code ignored;
    c.sock.shutdown(stream::socket::shutdown_both, ignored);
    c.sock.close(ignored);
    auto keep = c.shared_from_this();  // `c` must outlive the erase below
    conns.erase(c.id);
    connCount.store(conns.size(), std::memory_order_relaxed);
    if (c.helloDelivered) handler.onDisconnect(c.id, reason);
    return false;
  }

  Conn* find(ConnId id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.get();
  }

  /// Encodes on the caller's thread; an unencodable message closes the connection.
  std::optional<std::vector<std::byte>> encodeFor(ConnId id, const protocol::Message& m) {
    auto bytes = protocol::encode(m);
    if (bytes && bytes->size() <= opt.max_frame_size) return std::move(bytes).value();
    std::string reason = std::string("server could not send ") + protocol::typeName(protocol::typeOf(m)) + ": " +
                         (bytes ? "frame of " + std::to_string(bytes->size()) + " bytes exceeds max_frame_size" :
                                  "message breaks a protocol bound");
    spdlog::error("control: conn {}: {}", id, reason);
    asio::post(io, [this, id, reason] {
      if (auto* c = find(id)) drop(*c, reason);
    });
    return std::nullopt;
  }

  void stopOnIoThread() {
    stopped = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    if (acceptRetry) acceptRetry->cancel();
    std::vector<std::shared_ptr<Conn>> all;
    for (auto& [id, c] : conns) all.push_back(c);
    for (auto& c : all) drop(*c, "server stopping", Level::Info, true);
  }
};

// ---------------------------------------------------------------------------------------------

ControlServer::ControlServer(ControlServerOptions options, ControlHandler& handler)
    : m_impl(std::make_unique<Impl>(std::move(options), handler)) {
  m_impl->bindSocket();
  spdlog::info("control: listening on {}", m_impl->opt.socket_path);
}

bool ControlServer::replacedStaleSocket() const noexcept { return m_impl->replacedStale; }

void ControlServer::start() {
  if (m_impl->thread.joinable() || m_impl->stopped) return;
  m_impl->startAccept();
  m_impl->thread = std::thread([impl = m_impl.get()] {
    try {
      impl->io.run();
    } catch (const std::exception& e) {
      // Only a handler can throw here; the server cannot continue without a consistent owner.
      spdlog::critical("control: io thread died: {}", e.what());
      std::terminate();
    }
  });
}

ControlServer::~ControlServer() { stop(); }

asio::io_context& ControlServer::ioContext() noexcept { return m_impl->io; }

void ControlServer::stop() {
  if (!m_impl || m_impl->stopped) return;
  if (!m_impl->thread.joinable()) {  // never started: nothing runs on the io thread
    m_impl->stopped = true;
    boost::system::error_code ignored;
    m_impl->acceptor.close(ignored);
  } else {
    asio::post(m_impl->io, [impl = m_impl.get()] {
      impl->stopOnIoThread();
      impl->io.stop();
    });
    m_impl->thread.join();
  }
  struct stat st{};
  const auto& path = m_impl->opt.socket_path;
  // Only our own file: a successor may already have replaced it.
  if (::lstat(path.c_str(), &st) == 0 && st.st_dev == m_impl->sockDev && st.st_ino == m_impl->sockIno)
    ::unlink(path.c_str());
  m_impl->lockFd.reset();
  spdlog::info("control: stopped listening on {}", path);
}

void ControlServer::acceptHello(ConnId id, protocol::HelloOk ok, int segment_fd) {
  UniqueFd fd;
  if (segment_fd >= 0) {
    fd.reset(::fcntl(segment_fd, F_DUPFD_CLOEXEC, 0));
    if (!fd) {
      spdlog::error("control: conn {}: cannot dup segment fd {}: {}", id, segment_fd, errnoText(errno));
      close(id, "server could not pass the segment fd");
      return;
    }
  }
  auto bytes = m_impl->encodeFor(id, ok);
  if (!bytes) return;
  asio::post(m_impl->io, [impl = m_impl.get(), id, b = std::move(*bytes), f = std::make_shared<UniqueFd>(std::move(fd))]() mutable {
    auto* c = impl->find(id);
    if (!c) return;
    if (c->state == Impl::State::Hello) c->state = Impl::State::Open;
    impl->enqueue(*c, std::move(b), std::move(*f));
  });
}

void ControlServer::refuse(ConnId id, std::string reason) {
  auto bytes = m_impl->encodeFor(id, protocol::HelloRefused{reason});
  if (!bytes) return;
  asio::post(m_impl->io, [impl = m_impl.get(), id, b = std::move(*bytes), reason = std::move(reason)]() mutable {
    auto* c = impl->find(id);
    if (!c) return;
    impl->enqueue(*c, std::move(b));
    if (c->state != Impl::State::Closed) {
      c->closeAfterFlush = "Hello refused: " + reason;
      if (c->outq.empty() && !c->waitingWritable) impl->flush(*c);
    }
  });
}

void ControlServer::send(ConnId id, protocol::Message message) {
  auto bytes = m_impl->encodeFor(id, message);
  if (!bytes) return;
  asio::post(m_impl->io, [impl = m_impl.get(), id, b = std::move(*bytes)]() mutable {
    if (auto* c = impl->find(id)) impl->enqueue(*c, std::move(b));
  });
}

void ControlServer::close(ConnId id, std::string reason) {
  auto bytes = m_impl->encodeFor(id, protocol::Error{reason});
  if (!bytes) return;
  asio::post(m_impl->io, [impl = m_impl.get(), id, b = std::move(*bytes), reason = std::move(reason)]() mutable {
    auto* c = impl->find(id);
    if (!c) return;
    impl->enqueue(*c, std::move(b));
    if (c->state != Impl::State::Closed) {
      c->closeAfterFlush = reason;
      if (c->outq.empty() && !c->waitingWritable) impl->flush(*c);
    }
  });
}

void ControlServer::broadcast(protocol::Notice notice) {
  auto bytes = protocol::encode(notice);
  if (!bytes) {
    spdlog::error("control: cannot encode Notice for broadcast");
    return;
  }
  asio::post(m_impl->io, [impl = m_impl.get(), b = std::move(bytes).value()] {
    std::vector<std::shared_ptr<Impl::Conn>> open;
    for (auto& [id, c] : impl->conns)
      if (c->state == Impl::State::Open) open.push_back(c);
    for (auto& c : open) impl->enqueue(*c, b);
  });
}

std::size_t ControlServer::connectionCount() const noexcept {
  return m_impl->connCount.load(std::memory_order_relaxed);
}

const std::string& ControlServer::socketPath() const noexcept { return m_impl->opt.socket_path; }

}  // namespace hostq::control
