#pragma once
// Runs one reservation at a time on its own thread and connection, so that the loop thread keeps
// handing out prefetched jobs and reading results while PostgreSQL locks the next batch.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "hostq/store.hpp"

namespace hostq::server {

struct ReservationOutcome {
  std::size_t group = 0;
  ReserveRequest request;
  ReserveResult result;
  std::uint64_t busy_ns = 0;
  /// Set when the statement failed; `kind` says whether rows may have been locked (InDoubt /
  /// ConnectionLost: the caller reconciles) or not.
  std::optional<std::string> error;
  DbErrorKind kind = DbErrorKind::GiveUp;
};

class ReservationRunner {
 public:
  using StoreFactory = std::function<std::unique_ptr<Store>()>;
  ReservationRunner(StoreFactory factory, std::function<void()> wake);
  ~ReservationRunner();
  ReservationRunner(const ReservationRunner&) = delete;
  ReservationRunner& operator=(const ReservationRunner&) = delete;

  void submit(std::size_t group, ReserveRequest request);
  bool busy() const noexcept { return m_busy; }
  std::optional<ReservationOutcome> take();
  bool wait(std::chrono::milliseconds timeout);
  void stop();

 private:
  void run();
  StoreFactory m_factory;
  std::function<void()> m_wake;
  std::unique_ptr<Store> m_store;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::optional<ReservationOutcome> m_todo;
  std::optional<ReservationOutcome> m_done;
  bool m_stop = false;
  bool m_busy = false;
  std::thread m_thread;
};

}  // namespace hostq::server
