#include "server/stats_reporter.hpp"

#include <unistd.h>

namespace hostq::server {

StatsReporter::StatsReporter(Reserver& reserver, const ServerStats& stats, std::string host,
                             std::uint64_t generation, std::size_t held_channels)
    : m_reserver(reserver),
      m_stats(stats),
      m_host(std::move(host)),
      m_generation(generation),
      m_heldChannels(held_channels) {}

std::shared_ptr<StatsSnapshot> StatsReporter::snapshot(bool ask_database) {
  auto snap = std::make_shared<StatsSnapshot>();
  snap->server_pid = ::getpid();
  snap->host = m_host;
  snap->generation = m_generation;
  snap->http = m_http;
  for (auto& c : m_reserver.clients())
    snap->workers.push_back(WorkerSnapshot{c.name, c.pid, c.transport, c.state, c.jobs_done, c.current_job});
  m_reserver.refreshIdle();
  snap->idle = m_reserver.idle();
  snap->drained = ask_database ? m_reserver.drained() : m_reserver.drainedAsKnown();
  snap->database_up = m_reserver.databaseUp();
  snap->prefetched = m_reserver.prefetchedCount();
  snap->results_pending = m_reserver.pendingResults();
  snap->held_channels = m_heldChannels;
  snap->held_in_use = m_reserver.batchesInUse();
  snap->stats = m_stats;
  snap->taken_at = SteadyClock::now();
  return snap;
}

std::string StatsReporter::json() { return dumpJson(statsJson(*snapshot(true))); }

void StatsReporter::publishTo(StatsBoard& board, std::string http_address) {
  m_board = &board;
  m_http = std::move(http_address);
  m_nextPublish = SteadyClock::time_point{};
  publishIfDue(SteadyClock::now());
}

void StatsReporter::publishIfDue(SteadyClock::time_point now) {
  if (m_board == nullptr || now < m_nextPublish) return;
  m_nextPublish = now + std::chrono::milliseconds(250);
  m_board->publish(snapshot(false));
}

SteadyClock::time_point StatsReporter::nextPublish() const noexcept {
  return m_board == nullptr ? SteadyClock::time_point::max() : m_nextPublish;
}

}  // namespace hostq::server
