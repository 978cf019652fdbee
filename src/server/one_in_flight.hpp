#pragma once
// One piece of database work in flight on its own thread (and, through the work function, its
// own connection), handed over and collected by the loop thread. The reservation runner and the
// result writer are both this: while PostgreSQL runs one statement, the loop keeps handing out
// prefetched jobs and collecting results, which form the next batch (group commit).
//
// The loop thread polls take() on every turn, so its fast path is one acquire load: no mutex
// unless an outcome is actually waiting.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace hostq::server {

template <class Todo, class Outcome>
class OneInFlight {
 public:
  using Work = std::function<Outcome(Todo&)>;

  /// `work` runs on the thread; `wake` is called there when an outcome is ready.
  OneInFlight(Work work, std::function<void()> wake) : m_work(std::move(work)), m_wake(std::move(wake)) {
    m_thread = std::thread([this] { run(); });
  }
  ~OneInFlight() { stop(); }
  OneInFlight(const OneInFlight&) = delete;
  OneInFlight& operator=(const OneInFlight&) = delete;

  /// Hands work over. Loop thread only, and only while !busy().
  void submit(Todo todo) {
    {
      std::lock_guard lock(m_mutex);
      m_todo = std::move(todo);
    }
    m_busy = true;
    m_cv.notify_all();
  }
  /// Work submitted whose outcome has not been taken yet. Loop thread only.
  bool busy() const noexcept { return m_busy; }
  /// The outcome, if the work is done. Loop thread only.
  std::optional<Outcome> take() {
    // acquire: pairs with the release in run(), so m_done is complete when we lock for it.
    if (!m_busy || !m_ready.load(std::memory_order_acquire)) return std::nullopt;
    std::lock_guard lock(m_mutex);
    std::optional<Outcome> out = std::move(m_done);
    m_done.reset();
    m_ready.store(false, std::memory_order_relaxed);
    m_busy = false;
    return out;
  }
  /// Blocks until the work in flight is done (shutdown path); false on timeout or stop.
  bool wait(std::chrono::milliseconds timeout) {
    if (!m_busy) return true;
    std::unique_lock lock(m_mutex);
    return m_cv.wait_for(lock, timeout, [&] { return m_done.has_value() || m_stop; }) && m_done.has_value();
  }
  /// For the work function (a retry back-off): sleeps `d` unless stop() comes first. false =
  /// stopped.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(m_mutex);
    return !m_cv.wait_for(lock, d, [&] { return m_stop; });
  }
  /// Joins the thread; work in flight finishes its current statement first (or its pause ends).
  void stop() {
    {
      std::lock_guard lock(m_mutex);
      if (m_stop && !m_thread.joinable()) return;
      m_stop = true;
    }
    m_cv.notify_all();
    if (m_thread.joinable()) m_thread.join();
  }

 private:
  void run() {
    for (;;) {
      Todo todo;
      {
        std::unique_lock lock(m_mutex);
        m_cv.wait(lock, [&] { return m_stop || m_todo.has_value(); });
        if (m_stop) return;
        todo = std::move(*m_todo);
        m_todo.reset();
      }
      Outcome out = m_work(todo);
      {
        std::lock_guard lock(m_mutex);
        m_done = std::move(out);
      }
      m_ready.store(true, std::memory_order_release);
      m_cv.notify_all();
      m_wake();
    }
  }

  Work m_work;
  std::function<void()> m_wake;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::optional<Todo> m_todo;
  std::optional<Outcome> m_done;
  std::atomic<bool> m_ready{false};
  bool m_stop = false;
  bool m_busy = false;  ///< loop thread only
  std::thread m_thread;  ///< last: starts after everything it uses exists
};

}  // namespace hostq::server
