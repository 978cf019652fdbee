#include "server/worker_registry.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

namespace hostq::server {

WorkerRegistry::WorkerRegistry(WorkerJobs& jobs, std::uint32_t slots, std::chrono::milliseconds reconnect_grace)
    : m_jobs(jobs), m_grace(reconnect_grace), m_bySlot(slots) {
  for (std::uint32_t i = 0; i < slots; ++i) m_freeSlots.push_back(i);
}

std::optional<std::string> WorkerRegistry::refusal(const protocol::Hello& hello) {
  if (hello.name.empty() || hello.name.size() > 255) return "bad worker name";
  if (hello.config.queue.empty()) return "blank queue";
  if (hello.config.min_priority < kMinPriority || hello.config.max_priority > kMaxPriority ||
      hello.config.min_priority > hello.config.max_priority)
    return "priority range outside 0..1000000";
  return std::nullopt;
}

std::optional<control::ConnId> WorkerRegistry::connectionNamed(const std::string& name) const {
  for (const auto& [conn, id] : m_byConn)
    if (m_byId.at(id).name == name) return conn;
  return std::nullopt;
}

WorkerId WorkerRegistry::allocateId() {
  if (m_freeIds.empty()) return m_nextId++;
  const WorkerId id = m_freeIds.back();
  m_freeIds.pop_back();
  return id;
}

WorkerEntry& WorkerRegistry::add(control::ConnId conn, const protocol::Hello& hello, pid_t peer_pid) {
  const auto process = probeProcess(peer_pid);
  std::optional<std::uint32_t> slot;
  if (hello.transport == protocol::Transport::Shm && !m_freeSlots.empty()) {
    slot = m_freeSlots.front();
    m_freeSlots.pop_front();
  }
  const Transport transport = slot ? Transport::Shm : Transport::Socket;
  // The same process back after its connection went away: it keeps its id, and so its jobs.
  auto back = std::find_if(m_byId.begin(), m_byId.end(), [&](const auto& kv) {
    const WorkerEntry& d = kv.second;
    return d.detached() && d.name == hello.name && d.pid == peer_pid && process && d.process &&
           d.process->start_ticks == process->start_ticks;
  });
  WorkerEntry* w = nullptr;
  if (back != m_byId.end() && back->second.config == hello.config) {
    w = &back->second;
    --m_detachedCount;
    m_jobs.reattached(w->id, transport);
    spdlog::info("worker {} registered again; it keeps its {} job(s)", hello.name, m_jobs.jobsHeld(w->id));
  } else {
    if (back != m_byId.end()) forget(back->second, Gone::Died);  // another config: a new worker
    const WorkerId id = allocateId();
    w = &m_byId[id];
    w->id = id;
    m_jobs.added(id, hello.name, hello.pid, hello.config, transport);
  }
  w->name = hello.name;
  w->pid = peer_pid;
  w->process = process;
  w->config = hello.config;
  w->conn = conn;
  w->slot = slot;
  w->goodbye = false;
  w->parked_payloads.clear();
  m_byConn[conn] = w->id;
  if (slot) m_bySlot[*slot] = w->id;
  return *w;
}

std::optional<std::uint32_t> WorkerRegistry::closed(control::ConnId conn, const std::string& reason) {
  m_monitors.erase(conn);
  auto it = m_byConn.find(conn);
  if (it == m_byConn.end()) return std::nullopt;
  WorkerEntry& w = m_byId.at(it->second);
  m_byConn.erase(it);
  const auto slot = std::exchange(w.slot, std::nullopt);
  if (slot) {
    m_bySlot[*slot].reset();
    m_freeSlots.push_back(*slot);
  }
  w.conn = 0;
  w.parked_payloads.clear();
  const bool died = !w.goodbye;
  if (died && m_jobs.holdsAnything(w.id) && w.process && stillRunning(w.pid, *w.process)) {
    // The process lives on (we dropped it, or it gave up on this connection): what it ran it
    // will report after registering again. Rescheduling now would run those jobs twice.
    spdlog::info("worker {} disconnected ({}) but pid {} is alive: keeping its {} job(s) for {} ms", w.name, reason,
                 w.pid, m_jobs.jobsHeld(w.id), m_grace.count());
    m_jobs.detached(w.id);
    w.grace_until = SteadyClock::now() + m_grace;
    ++m_detachedCount;
    return slot;
  }
  if (died) spdlog::info("worker {} disconnected: {}", w.name, reason);
  forget(w, died ? Gone::Died : Gone::Left);
  return slot;
}

void WorkerRegistry::forget(WorkerEntry& w, Gone how) {
  if (w.detached() && w.grace_until != SteadyClock::time_point{}) --m_detachedCount;
  const WorkerId id = w.id;
  m_jobs.gone(id, how);
  m_byId.erase(id);
  m_freeIds.push_back(id);
}

void WorkerRegistry::expire(SteadyClock::time_point now, bool now_anyway) {
  if (m_detachedCount == 0 || (!now_anyway && now < m_nextCheck)) return;
  m_nextCheck = now + std::chrono::milliseconds(100);
  std::vector<WorkerId> lost;
  for (auto& [id, w] : m_byId) {
    if (!w.detached()) continue;
    const bool alive = w.process && stillRunning(w.pid, *w.process);
    if (alive && now < w.grace_until) continue;
    spdlog::warn("worker {} {}: its jobs are rescheduled", w.name,
                 alive ? "did not register again within reconnect_grace" : "died while disconnected");
    lost.push_back(id);
  }
  for (WorkerId id : lost) forget(m_byId.at(id), Gone::Died);
}

SteadyClock::time_point WorkerRegistry::nextExpiry() const noexcept {
  return m_detachedCount == 0 ? SteadyClock::time_point::max() : m_nextCheck;
}

WorkerEntry* WorkerRegistry::byConn(control::ConnId conn) {
  auto it = m_byConn.find(conn);
  return it == m_byConn.end() ? nullptr : &m_byId.at(it->second);
}

WorkerEntry* WorkerRegistry::bySlot(std::uint32_t slot) {
  if (slot >= m_bySlot.size() || !m_bySlot[slot]) return nullptr;
  return &m_byId.at(*m_bySlot[slot]);
}

WorkerEntry* WorkerRegistry::byId(WorkerId id) {
  auto it = m_byId.find(id);
  return it == m_byId.end() ? nullptr : &it->second;
}

}  // namespace hostq::server
