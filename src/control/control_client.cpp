#include "control/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace hostq::control {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kInitialRx = 16 * 1024;

ClientError mkErr(ClientError::Kind k, std::string detail, int e = 0) { return ClientError{k, std::move(detail), e}; }

int msLeft(Clock::time_point deadline, bool forever) {
  if (forever) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace

std::string ClientError::describe() const {
  static const char* names[] = {"connect failed", "timed out", "refused", "connection closed",
                                "protocol error", "interrupted", "not connected", "usage error"};
  std::string s = names[static_cast<int>(kind)];
  if (!detail.empty()) s += ": " + detail;
  if (err) s += std::string(" (") + std::strerror(err) + ")";
  return s;
}

std::optional<std::string> checkAssignment(const protocol::JobAssigned& job, const std::string& worker_name,
                                           std::optional<std::uint64_t> pending) {
  if (!pending) return "job " + std::to_string(job.id) + " arrived with no Reserve outstanding";
  if (job.request_seq != *pending)
    return "job " + std::to_string(job.id) + " answers request " + std::to_string(job.request_seq) +
           ", but the outstanding one is " + std::to_string(*pending);
  if (job.locked_by != worker_name)
    return "job " + std::to_string(job.id) + " is locked by '" + job.locked_by + "', not by this worker '" +
           worker_name + "'";
  return std::nullopt;
}

ControlClient::ControlClient(ClientOptions options) : m_opt(options) {}
ControlClient::ControlClient(ControlClient&&) noexcept = default;
ControlClient& ControlClient::operator=(ControlClient&&) noexcept = default;
ControlClient::~ControlClient() = default;

void ControlClient::close() noexcept {
  m_fd.reset();
  m_rx.clear();
  m_rx.shrink_to_fit();
  m_rxLen = 0;
  m_fds.clear();
  m_pending.reset();
}

Status ControlClient::connect(const std::string& path, std::chrono::milliseconds timeout) {
  close();
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return Err{mkErr(ClientError::Kind::Connect, "bad socket path '" + path + "'")};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Err{mkErr(ClientError::Kind::Connect, "socket()", errno)};
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      m_fd = std::move(fd);
      m_rx.resize(kInitialRx);
      return std::monostate{};
    }
    int e = errno;
    if (e == EINPROGRESS) {
      pollfd p{fd.get(), POLLOUT, 0};
      int r = ::poll(&p, 1, msLeft(deadline, false));
      if (r == 0) return Err{mkErr(ClientError::Kind::Connect, "timed out connecting to " + path, ETIMEDOUT)};
      int soerr = 0;
      socklen_t len = sizeof soerr;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
      if (r > 0 && soerr == 0) {
        m_fd = std::move(fd);
        m_rx.resize(kInitialRx);
        return std::monostate{};
      }
      return Err{mkErr(ClientError::Kind::Connect, path, soerr ? soerr : errno)};
    }
    // EAGAIN: the server's accept backlog is full. It is alive, just busy: retry briefly.
    if ((e == EAGAIN || e == EINTR) && Clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
      continue;
    }
    return Err{mkErr(ClientError::Kind::Connect, path, e)};
  }
}

Status ControlClient::send(const protocol::Message& m) {
  if (!m_fd) return Err{mkErr(ClientError::Kind::NotConnected, "send")};
  const auto* reserve = std::get_if<protocol::Reserve>(&m);
  if (reserve && m_pending)
    return Err{mkErr(ClientError::Kind::Usage, "a Reserve (seq " + std::to_string(*m_pending) +
                                                             ") is already outstanding")};
  auto bytes = protocol::encode(m);
  if (!bytes || bytes->size() > m_opt.max_frame_size)
    return Err{mkErr(ClientError::Kind::Usage, std::string("cannot encode ") +
                                                             protocol::typeName(protocol::typeOf(m)))};
  const auto deadline = Clock::now() + m_opt.send_timeout;
  std::size_t off = 0;
  while (off < bytes->size()) {
    // MSG_NOSIGNAL: a server that died is an EPIPE here, not a SIGPIPE that kills the worker.
    ssize_t n = ::send(m_fd.get(), bytes->data() + off, bytes->size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      pollfd p{m_fd.get(), POLLOUT, 0};
      int r = ::poll(&p, 1, msLeft(deadline, false));
      if (r == 0) {
        close();  // a partial frame is on the wire: the connection cannot be reused
        return Err{mkErr(ClientError::Kind::Timeout, "server not reading")};
      }
      continue;
    }
    close();
    return Err{mkErr(ClientError::Kind::Closed, "send", e)};
  }
  if (reserve) m_pending = reserve->request_seq;
  return std::monostate{};
}

ControlClient::Fill ControlClient::fill(Clock::time_point deadline, bool forever, int interrupt_fd,
                                        ClientError& err) {
  for (;;) {
    pollfd p[2] = {{m_fd.get(), POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
    int r = ::poll(p, interrupt_fd >= 0 ? 2 : 1, msLeft(deadline, forever));
    if (r < 0) {
      if (errno == EINTR) continue;  // the interrupt fd, not EINTR, is how callers wake us
      err = mkErr(ClientError::Kind::Closed, "poll", errno);
      return Fill::Error;
    }
    if (r == 0) return Fill::Timeout;
    if (interrupt_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) return Fill::Interrupted;
    if (!p[0].revents) continue;

    if (m_rx.size() - m_rxLen < 4096 && m_rx.size() < kInitialRx) m_rx.resize(kInitialRx);
    iovec iov{m_rx.data() + m_rxLen, m_rx.size() - m_rxLen};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(m_fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      err = mkErr(ClientError::Kind::Closed, "recv", errno);
      return Fill::Error;
    }
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
        m_fds.emplace_back(fd);
      }
    }
    if (n == 0) {
      err = mkErr(ClientError::Kind::Closed,
                  m_rxLen ? "server closed the connection in the middle of a frame" : "server closed the connection");
      return Fill::Eof;
    }
    m_rxLen += static_cast<std::size_t>(n);
    return Fill::Data;
  }
}

bool ControlClient::hasBuffered() const noexcept {
  if (m_rxLen == 0) return false;
  auto h = protocol::decodeHeader(std::span(m_rx.data(), m_rxLen), protocol::Limits{m_opt.max_frame_size});
  if (!h) return h.error().code != protocol::DecodeErrc::Truncated;
  return m_rxLen >= h->frameSize();
}

std::optional<Result<protocol::Message, protocol::DecodeError>> ControlClient::takeFrame() {
  protocol::Limits limits{m_opt.max_frame_size};
  auto h = protocol::decodeHeader(std::span(m_rx.data(), m_rxLen), limits);
  if (!h) {
    if (h.error().code == protocol::DecodeErrc::Truncated) return std::nullopt;
    return Result<protocol::Message, protocol::DecodeError>(Err{h.error()});
  }
  if (m_rxLen < h->frameSize()) {
    if (m_rx.size() < h->frameSize()) m_rx.resize(h->frameSize());  // bounded by max_frame_size
    return std::nullopt;
  }
  auto m = protocol::decodeBody(*h, std::span(m_rx.data() + protocol::kHeaderSize, h->body_length));
  std::memmove(m_rx.data(), m_rx.data() + h->frameSize(), m_rxLen - h->frameSize());
  m_rxLen -= h->frameSize();
  if (m_rxLen == 0 && m_rx.size() > 4 * kInitialRx) {
    m_rx.resize(kInitialRx);
    m_rx.shrink_to_fit();
  }
  return m;
}

namespace {

ControlClient::Received failed(ClientError e) {
  ControlClient::Received r;
  r.kind = e.kind == ClientError::Kind::Closed ? ControlClient::Received::Kind::Eof : ControlClient::Received::Kind::Error;
  r.error = std::move(e);
  return r;
}

}  // namespace

ControlClient::Received ControlClient::receive(std::chrono::milliseconds timeout, int interrupt_fd) {
  using Kind = Received::Kind;
  if (!m_fd) return failed(mkErr(ClientError::Kind::NotConnected, "receive"));
  const bool forever = timeout < 0ms;
  const auto deadline = Clock::now() + (forever ? 0ms : timeout);
  for (;;) {
    if (auto frame = takeFrame()) {
      if (!frame->ok()) {
        auto why = "bad frame from server: " + frame->error().describe();
        close();
        return failed(mkErr(ClientError::Kind::Protocol, why));
      }
      protocol::Message m = std::move(*frame).value();
      auto t = protocol::typeOf(m);
      std::optional<std::string> bad;
      if (protocol::isWorkerToServer(t)) {
        bad = std::string("server sent a worker message: ") + protocol::typeName(t);
      } else if (auto* job = std::get_if<protocol::JobAssigned>(&m)) {
        bad = checkAssignment(*job, m_name, m_pending);
        if (!bad) m_pending.reset();
      } else if (!m_helloPhase && (t == protocol::MessageType::HelloOk || t == protocol::MessageType::HelloRefused)) {
        bad = std::string(protocol::typeName(t)) + " outside the handshake";
      }
      if (bad) {
        close();
        return failed(mkErr(ClientError::Kind::Protocol, *bad));
      }
      if (!m_helloPhase) m_fds.clear();  // only HelloOk carries an fd; anything else is dropped
      Received r;
      r.kind = Kind::Message;
      r.message = std::move(m);
      return r;
    }
    ClientError err;
    switch (fill(deadline, forever, interrupt_fd, err)) {
      case Fill::Data: continue;
      case Fill::Timeout: return Received{Kind::Timeout, std::nullopt, {}};
      case Fill::Interrupted:
        // The reply to an outstanding Reserve would arrive later and look like the answer to the
        // next one; a fresh connection is the only clean state.
        if (m_pending) close();
        return Received{Kind::Interrupted, std::nullopt, mkErr(ClientError::Kind::Interrupted, "")};
      case Fill::Eof:
        close();
        return failed(std::move(err));
      case Fill::Error:
        close();
        return failed(std::move(err));
    }
  }
}

Result<ControlClient::HelloReply, ClientError> ControlClient::hello(const protocol::Hello& hello,
                                                                              std::chrono::milliseconds timeout,
                                                                              int interrupt_fd) {
  if (!m_fd) return Err{mkErr(ClientError::Kind::NotConnected, "hello")};
  m_name = hello.name;
  m_pending.reset();
  m_fds.clear();
  if (auto s = send(hello); !s) return Err{std::move(s).error()};
  m_helloPhase = true;
  struct PhaseGuard {
    bool& flag;
    ~PhaseGuard() { flag = false; }
  } guard{m_helloPhase};
  const auto deadline = Clock::now() + timeout;
  auto left = [&] { return std::max(0ms, std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())); };
  for (;;) {
    Received r = receive(left(), interrupt_fd);
    switch (r.kind) {
      case Received::Kind::Timeout:
        close();
        return Err{mkErr(ClientError::Kind::Timeout, "no answer to Hello")};
      case Received::Kind::Interrupted:
        close();
        return Err{mkErr(ClientError::Kind::Interrupted, "during Hello")};
      case Received::Kind::Eof:
      case Received::Kind::Error:
        close();
        return Err{std::move(r.error)};
      case Received::Kind::Message: break;
    }
    if (auto* ok = std::get_if<protocol::HelloOk>(&*r.message)) {
      HelloReply reply{*ok, UniqueFd()};
      if (ok->slot) {
        if (m_fds.empty()) {
          close();
          return Err{mkErr(ClientError::Kind::Protocol, "HelloOk gives a slot but no segment fd came with it")};
        }
        reply.segment_fd = std::move(m_fds.front());
      }
      m_fds.clear();
      return reply;
    }
    std::string reason;
    if (auto* no = std::get_if<protocol::HelloRefused>(&*r.message)) reason = no->reason;
    else if (auto* er = std::get_if<protocol::Error>(&*r.message)) reason = er->reason;
    else {
      auto t = protocol::typeName(protocol::typeOf(*r.message));
      close();
      return Err{mkErr(ClientError::Kind::Protocol, std::string("expected HelloOk, got ") + t)};
    }
    close();
    return Err{mkErr(ClientError::Kind::Refused, reason)};
  }
}

}  // namespace hostq::control
