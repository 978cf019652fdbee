#pragma once
// Asks a running server for its stats over the control socket, as a monitor (never a worker).
#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace hostq::cli {

/// A monitor connection to the server: asks for stats as often as needed on one connection.
class StatsClient {
 public:
  StatsClient();
  ~StatsClient();
  /// The server's stats JSON, or nullopt with `error` set (no server, refused, timeout). Connects
  /// (again) when needed.
  std::optional<std::string> query(const std::string& socket_path, std::chrono::milliseconds timeout,
                                   std::string& error);

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

inline std::optional<std::string> queryStats(const std::string& socket_path, std::chrono::milliseconds timeout,
                                             std::string& error) {
  return StatsClient().query(socket_path, timeout, error);
}
/// Indents JSON for people.
std::string prettyJson(const std::string& json);

}  // namespace hostq::cli
