#include "control/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace hostq::control {

Backoff::Backoff(Options o, std::uint64_t seed) : m_opt(o), m_rng(seed) {
  m_opt.jitter = std::clamp(m_opt.jitter, 0.0, 1.0);
  m_opt.factor = std::max(m_opt.factor, 1.0);
  if (m_opt.max < m_opt.initial) m_opt.max = m_opt.initial;
}

std::chrono::milliseconds Backoff::next() {
  const double base = static_cast<double>(m_opt.initial.count()) *
                      std::pow(m_opt.factor, std::min(m_attempt, 62));
  const double capped = std::min(base, static_cast<double>(m_opt.max.count()));
  if (m_attempt < 1'000'000) ++m_attempt;
  std::uniform_real_distribution<double> u(0.0, capped * m_opt.jitter);
  return std::chrono::milliseconds(static_cast<std::int64_t>(capped * (1.0 - m_opt.jitter) + u(m_rng)));
}

}  // namespace hostq::control
