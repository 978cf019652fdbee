#include "support/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

namespace hostq::test {

HttpConnection::HttpConnection(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
  if (::inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr) != 1) return;
  m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (m_fd < 0) return;
  if (::connect(m_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(m_fd);
    m_fd = -1;
  }
}

HttpConnection::~HttpConnection() {
  if (m_fd >= 0) ::close(m_fd);
}

bool HttpConnection::send(const std::string& bytes) {
  std::size_t sent = 0;
  while (m_fd >= 0 && sent < bytes.size()) {
    const ssize_t n = ::send(m_fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return m_fd >= 0;
}

std::optional<std::string> HttpConnection::readUntilClosed(std::chrono::milliseconds timeout) {
  if (m_fd < 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string out;
  char buf[16384];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{m_fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    const ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;  // closed (or reset after the server's answer)
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<HttpReply> parseHttpReply(const std::string& raw) {
  const auto head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || raw.size() < 12) return std::nullopt;
  HttpReply r;
  r.status = std::stoi(raw.substr(9, 3));
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    const auto eol = raw.find("\r\n", pos);
    const std::string line = raw.substr(pos, eol - pos);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    pos = eol + 2;
  }
  r.body = raw.substr(head_end + 4);
  return r;
}

std::optional<HttpReply> httpExchange(const std::string& address, const std::string& raw,
                                      std::chrono::milliseconds timeout) {
  HttpConnection c(address);
  if (!c.connected()) return std::nullopt;
  c.send(raw);  // the server may answer and close before it has read everything
  auto reply = c.readUntilClosed(timeout);
  if (!reply) return std::nullopt;
  return parseHttpReply(*reply);
}

std::optional<HttpReply> httpRequest(const std::string& address, const std::string& path, const std::string& method) {
  return httpExchange(address, method + " " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
}

}  // namespace hostq::test
