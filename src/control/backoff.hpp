#pragma once
// Capped exponential back-off with jitter for reconnect loops. After a server restart every
// worker of the host reconnects at once; the jitter spreads them so the new server's accept
// queue and the first reservation are not hit by one synchronized wave.
#include <chrono>
#include <cstdint>
#include <random>

namespace hostq::control {

class Backoff {
 public:
  struct Options {
    std::chrono::milliseconds initial{20};
    std::chrono::milliseconds max{2000};
    double factor = 2.0;
    /// Fraction of each delay that is random: delay = d·(1−jitter) + uniform(0, d·jitter).
    double jitter = 0.5;
  };
  Backoff() : Backoff(Options{}) {}
  explicit Backoff(Options o, std::uint64_t seed = std::random_device{}());

  /// The delay to wait before the next attempt; each call grows the base up to `max`.
  std::chrono::milliseconds next();
  /// Call after a success, so the next failure starts small again.
  void reset() noexcept { m_attempt = 0; }
  int attempts() const noexcept { return m_attempt; }

 private:
  Options m_opt;
  int m_attempt = 0;
  std::mt19937_64 m_rng;
};

}  // namespace hostq::control
