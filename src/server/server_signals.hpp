#pragma once
// The server's stop signals (INT, TERM, QUIT): the handler sets a flag and rings the loop's
// doorbell, so a loop asleep in waitForWork wakes at once. Process-wide, as signal dispositions
// are; one server per process.
namespace hostq::shm {
class ServerDoorbell;
}

namespace hostq::server {

class ServerSignals {
 public:
  /// Clears any earlier stop request (a second server run in the same process).
  static void reset() noexcept;
  /// Installs the handlers; from now on a signal rings `doorbell` (which must outlive uninstall()).
  static void install(const shm::ServerDoorbell* doorbell) noexcept;
  /// The doorbell goes away: signals only set the flag.
  static void uninstall() noexcept;
  /// As a signal would (e.g. the host monitor found this server declared dead).
  static void requestStop() noexcept;
  static bool stopRequested() noexcept;
};

}  // namespace hostq::server
