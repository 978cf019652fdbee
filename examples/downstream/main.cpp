// Uses enough of libhostq (handlers, YAML settings) that a link with missing dependencies fails.
#include <hostq/config.hpp>
#include <hostq/pool.hpp>

#include <cstdio>

int main() {
  hostq::HandlerRegistry handlers;
  handlers.addBuiltins().add("greet", [](const hostq::Job&) {});
  const auto settings = hostq::parsePoolSettings("workers:\n  - queue: mail\n    workers: 3\n");
  if (handlers.size() != 6 || settings.workers.size() != 1 || settings.workers[0].config.workers != 3) return 1;
  std::printf("downstream ok\n");
  return 0;
}
