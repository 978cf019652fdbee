#pragma once
// `HOST:PORT` of the HTTP endpoint (`--http`, `server.http_listen`): an IPv4 address or name,
// or a bracketed IPv6 address (`[::1]:9187`). Checked when the settings are read, so a typo
// stops the start instead of leaving the endpoint silently off.
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hostq::http {

struct ListenAddress {
  std::string host;  ///< without brackets
  std::uint16_t port = 0;
};

inline std::optional<ListenAddress> parseListenAddress(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // IPv6 needs brackets, or the port is ambiguous
  }
  for (char c : host)
    if (c == ' ' || c == '/' || c == '[' || c == ']') return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) return std::nullopt;
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace hostq::http
