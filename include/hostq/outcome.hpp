#pragma once
// What a handler returns: success, or a failure with its message. Handlers may also throw; an
// exception is a failure with its what() as the message.
#include <optional>
#include <string>

#include "hostq/job.hpp"

namespace hostq {

class Outcome {
 public:
  static Outcome success() { return Outcome{}; }
  static Outcome failure(std::string message) {
    Outcome o;
    o.m_error = std::move(message);
    return o;
  }
  /// Fail, and retry at `when` instead of the default backoff (now + attempts⁴ + 5 s).
  static Outcome retryAt(std::string message, TimePoint when) {
    Outcome o = failure(std::move(message));
    o.m_runAt = when;
    return o;
  }
  bool ok() const noexcept { return !m_error.has_value(); }
  /// The failure's message; empty on a success (check ok(): a failure's message may be empty too).
  const std::string& error() const noexcept {
    static const std::string kNone;
    return m_error ? *m_error : kNone;
  }
  const std::optional<TimePoint>& runAt() const noexcept { return m_runAt; }

 private:
  std::optional<std::string> m_error;
  std::optional<TimePoint> m_runAt;
};

}  // namespace hostq
