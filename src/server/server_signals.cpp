#include "server/server_signals.hpp"

#include <signal.h>

#include <atomic>

#include "shm/server_segment.hpp"

namespace hostq::server {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<const shm::ServerDoorbell*> g_doorbell{nullptr};

extern "C" void onServerSignal(int) { ServerSignals::requestStop(); }

}  // namespace

void ServerSignals::reset() noexcept { g_stop.store(false); }

void ServerSignals::install(const shm::ServerDoorbell* doorbell) noexcept {
  g_doorbell.store(doorbell);
  struct sigaction sa{};
  sa.sa_handler = onServerSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGINT, SIGTERM, SIGQUIT}) ::sigaction(s, &sa, nullptr);
}

void ServerSignals::uninstall() noexcept { g_doorbell.store(nullptr); }

void ServerSignals::requestStop() noexcept {
  // Async-signal-safe: lock-free atomics and the doorbell's futex wake.
  g_stop.store(true);
  if (const auto* d = g_doorbell.load()) d->ring();
}

bool ServerSignals::stopRequested() noexcept { return g_stop.load(); }

}  // namespace hostq::server
