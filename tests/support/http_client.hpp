#pragma once
// A deliberately plain HTTP/1.1 client for the HTTP endpoint's tests: raw bytes over a TCP
// socket, so a test can send exactly the malformed, oversized or slow requests a real client
// library would refuse to produce. The reply is read until the server closes the connection.
#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace hostq::test {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< names lower-cased
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

/// One TCP connection to "HOST:PORT" (IPv4 literal). Closed on destruction.
class HttpConnection {
 public:
  explicit HttpConnection(const std::string& address);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool connected() const { return m_fd >= 0; }
  /// All of `bytes`; false when the server closed or reset the connection.
  bool send(const std::string& bytes);
  /// Everything the server sends until it closes the connection, or nullopt when it did not
  /// close within `timeout`.
  std::optional<std::string> readUntilClosed(std::chrono::milliseconds timeout);

 private:
  int m_fd = -1;
};

/// The status line, headers and body of a raw reply (nullopt when it is not HTTP).
std::optional<HttpReply> parseHttpReply(const std::string& raw);

/// Sends `raw` on a new connection and parses what comes back before the server closes.
std::optional<HttpReply> httpExchange(const std::string& address, const std::string& raw,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// `METHOD path` with `Connection: close`.
std::optional<HttpReply> httpRequest(const std::string& address, const std::string& path,
                                     const std::string& method = "GET");

}  // namespace hostq::test
