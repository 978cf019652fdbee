// The built-in handlers. Registered only on request (--builtin-handlers).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "hostq/handler_registry.hpp"
#include "hostq/worker.hpp"

namespace hostq {

HandlerRegistry& HandlerRegistry::addBuiltins() {
  add("hostq.noop", [](const Job&) {});
  add("hostq.sleep", [](const Job& j) {
    long ms = 0;
    auto [p, ec] = std::from_chars(j.payload.data(), j.payload.data() + j.payload.size(), ms);
    if (ec != std::errc{} || ms < 0) throw std::invalid_argument("hostq.sleep: payload is not a number of milliseconds");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  });
  add("hostq.fail", [](const Job& j) { return Outcome::failure(j.payload.empty() ? "hostq.fail" : j.payload); });
  add("hostq.crash", [](const Job&) { ::kill(::getpid(), SIGKILL); });
  add("hostq.append", [](const Job& j) {
    const int fd = ::open(j.payload.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("hostq.append: open " + j.payload + ": " + std::strerror(errno));
    // One write with O_APPEND: lines from concurrent workers never interleave.
    const std::string line = std::to_string(j.id) + " " + currentWorkerName() + "\n";
    const auto n = ::write(fd, line.data(), line.size());
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(line.size()))
      throw std::runtime_error(std::string("hostq.append: write: ") + std::strerror(err));
  });
  return *this;
}

}  // namespace hostq
