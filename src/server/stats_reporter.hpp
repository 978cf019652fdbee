#pragma once
// The server's stats reporting, on the loop thread: a snapshot of the reserver's and the
// server's figures for the socket's StatsRequest (rendered fresh, its "drained" asking the
// database, which wait-idle relies on), and the snapshots published to the HTTP side every
// 250 ms when the endpoint is on (its "drained" from what the loop knows).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "server/reserver.hpp"
#include "server/stats.hpp"
#include "server/stats_snapshot.hpp"

namespace hostq::server {

class StatsReporter {
 public:
  StatsReporter(Reserver& reserver, const ServerStats& stats, std::string host, std::uint64_t generation,
                std::size_t held_channels);

  /// The socket's answer: `hostq stats --json`.
  std::string json();
  /// From now on publish to `board` (the HTTP endpoint's, bound at `http_address`); publishes now.
  void publishTo(StatsBoard& board, std::string http_address);
  /// Publishes if the last one is 250 ms old.
  void publishIfDue(SteadyClock::time_point now);
  /// When publishIfDue next has something to do; max() when not publishing.
  SteadyClock::time_point nextPublish() const noexcept;

 private:
  std::shared_ptr<StatsSnapshot> snapshot(bool ask_database);

  Reserver& m_reserver;
  const ServerStats& m_stats;
  const std::string m_host;
  const std::uint64_t m_generation;
  const std::size_t m_heldChannels;
  StatsBoard* m_board = nullptr;
  std::string m_http;
  SteadyClock::time_point m_nextPublish{};
};

}  // namespace hostq::server
