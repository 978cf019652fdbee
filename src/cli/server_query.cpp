#include "cli/server_query.hpp"

#include <unistd.h>

#include <variant>

#include "common/json.hpp"
#include "control/control_client.hpp"
#include "hostq/config.hpp"

namespace hostq::cli {

struct StatsClient::Impl {
  control::ControlClient client;
};

StatsClient::StatsClient() : m_impl(std::make_unique<Impl>()) {}

StatsClient::~StatsClient() {
  if (m_impl->client.connected()) (void)m_impl->client.send(protocol::Message(protocol::Goodbye{}));
}

std::optional<std::string> StatsClient::query(const std::string& socket_path, std::chrono::milliseconds timeout,
                                              std::string& error) {
  auto& client = m_impl->client;
  if (!client.connected()) {
    auto st = client.connect(socket_path, timeout);
    if (!st.ok()) {
      error = st.error().describe();
      return std::nullopt;
    }
    protocol::Hello h;
    h.name = "monitor:" + resolveHostname("") + ":" + std::to_string(::getpid());
    h.pid = static_cast<std::int32_t>(::getpid());
    h.transport = protocol::Transport::Socket;
    auto r = client.hello(h, timeout);
    if (!r.ok()) {
      error = r.error().describe();
      client.close();
      return std::nullopt;
    }
  }
  if (auto s = client.send(protocol::Message(protocol::StatsRequest{})); !s.ok()) {
    error = s.error().describe();
    client.close();
    return std::nullopt;
  }
  for (;;) {
    auto rec = client.receive(timeout, -1);
    if (rec.kind != control::ControlClient::Received::Kind::Message) {
      error = rec.kind == control::ControlClient::Received::Kind::Timeout ? "no answer from the server"
                                                                         : rec.error.describe();
      client.close();
      return std::nullopt;
    }
    if (auto* reply = std::get_if<protocol::StatsReply>(&*rec.message)) return reply->json;
  }
}

std::string prettyJson(const std::string& json) {
  const Json doc = parseJsonOrDiscard(json);
  // Not JSON (an old or foreign server): show it as it came rather than nothing.
  return (doc.is_discarded() ? json : dumpJson(doc, 2)) + "\n";
}

}  // namespace hostq::cli
