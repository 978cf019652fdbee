// Uses enough of libhostq (handlers, YAML settings, a client) that a link with missing
// dependencies fails; includes the umbrella header, so every public header compiles here too.
#include <hostq/hostq.hpp>

#include <cstdio>
#include <cstring>

int main() {
  hostq::HandlerRegistry handlers;
  handlers.addBuiltins().add("greet", [](const hostq::Job&) {});
  const auto settings = hostq::parsePoolSettings("workers:\n  - queue: mail\n    workers: 3\n");
  if (handlers.size() != 6 || settings.workers.size() != 1 || settings.workers[0].config.workers != 3) return 1;
  // A client connects on first use: constructing one needs no database.
  hostq::Client client({.database_url = "host=/nonexistent"});
  if (hostq::Client::latestSchemaVersion() < 1) return 1;
  if (std::strcmp(hostq::version(), hostq::kVersionString) != 0) return 1;
  std::printf("downstream ok %s\n", hostq::version());
  return 0;
}
