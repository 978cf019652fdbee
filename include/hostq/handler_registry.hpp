#pragma once
// Handlers by tag: the code a worker runs for a job.
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "hostq/job.hpp"
#include "hostq/outcome.hpp"

namespace hostq {

/// What to do with the attempt a failure would count (inst-jobs' on_failure returning :unlock).
enum class FailureAction { CountAttempt, DontCount };

struct HandlerOptions {
  /// Called on every failure before the job is rescheduled or failed for good.
  std::function<FailureAction(const Job&, const std::string& error)> on_failure;
  /// Called when this failure is the last one (max attempts reached, or expired).
  std::function<void(const Job&, const std::string& error)> on_permanent_failure;
  /// Custom reschedule time for a retry; nullopt = default backoff.
  std::function<std::optional<TimePoint>(const Job&, int attempts)> reschedule_at;
};

using Handler = std::function<Outcome(const Job&)>;

class HandlerRegistry {
 public:
  struct Entry {
    Handler handler;
    HandlerOptions options;
  };

  /// Registers `fn` for `tag`. `fn` returns Outcome, or void (success unless it throws).
  template <class F>
  HandlerRegistry& add(std::string tag, F&& fn, HandlerOptions options = {}) {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, const Job&>>) {
      m_entries[std::move(tag)] = Entry{[f = std::forward<F>(fn)](const Job& j) mutable {
                                          f(j);
                                          return Outcome::success();
                                        },
                                        std::move(options)};
    } else {
      m_entries[std::move(tag)] = Entry{Handler(std::forward<F>(fn)), std::move(options)};
    }
    return *this;
  }
  const Entry* find(const std::string& tag) const {
    auto it = m_entries.find(tag);
    return it == m_entries.end() ? nullptr : &it->second;
  }
  std::size_t size() const noexcept { return m_entries.size(); }

  /// hostq.noop, hostq.sleep (payload: ms), hostq.fail (payload: message), hostq.crash (SIGKILL
  /// self), hostq.append (payload: a path; appends "ID WORKER-NAME\n" with one O_APPEND write).
  /// Never registered by default: whoever can write the jobs table must not get file writes or
  /// crashes for free.
  HandlerRegistry& addBuiltins();

 private:
  std::unordered_map<std::string, Entry> m_entries;
};

}  // namespace hostq
