#include "shm/adaptive_spin.hpp"

#include <sched.h>

#include <algorithm>
#include <ctime>

namespace hostq::shm {

namespace {
double calibratePause() noexcept {
  // Minimum of a few short batches: preemption only ever inflates a batch.
  constexpr int kBatch = 500;
  double best = 1e9;
  for (int round = 0; round < 5; ++round) {
    const std::uint64_t t0 = monotonicNs();
    for (int i = 0; i < kBatch; ++i) cpuRelax();
    const std::uint64_t t1 = monotonicNs();
    best = std::min(best, static_cast<double>(t1 - t0) / kBatch);
  }
  return std::clamp(best, 1.0, 200.0);
}
}  // namespace

double pauseNanos() noexcept {
  static const double kPause = calibratePause();
  return kPause;
}

unsigned usableCpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  return 1;
}

AdaptiveSpin::AdaptiveSpin() noexcept : m_pauseNs(pauseNanos()) {
  auto toPauses = [this](std::uint64_t ns) {
    return static_cast<std::uint32_t>(std::max(1.0, static_cast<double>(ns) / m_pauseNs));
  };
  m_min = toPauses(kMinSpinNs);
  m_max = toPauses(kMaxSpinNs);
  m_budget = std::clamp(toPauses(kInitialSpinNs), m_min, m_max);
}

void AdaptiveSpin::onSpinSuccess(std::uint32_t spins) noexcept {
  // Cover twice what this wait needed: one sample is noisy, and an undershoot costs a sleep.
  const std::uint64_t want = 2ull * spins + m_min;
  m_budget = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(std::max<std::uint64_t>(m_budget, want), m_min, m_max));
}

void AdaptiveSpin::onSpinFailure() noexcept { m_budget = std::max(m_min, m_budget / 2); }

void AdaptiveSpin::afterSleep(std::uint64_t waitStartNs, std::uint64_t postedNs,
                              std::uint64_t nowNs) noexcept {
  if (postedNs < waitStartNs || postedNs > nowNs) return;
  const std::uint64_t wouldSpinNs = postedNs - waitStartNs;
  const std::uint64_t wakeNs = nowNs - postedNs;
  if (wakeNs <= kExpensiveWakeNs || wouldSpinNs >= kMaxSpinNs) return;
  const auto need = static_cast<std::uint64_t>(2.0 * static_cast<double>(wouldSpinNs) / m_pauseNs) + m_min;
  m_budget = static_cast<std::uint32_t>(
      std::clamp<std::uint64_t>(std::max<std::uint64_t>(2ull * m_budget, need), m_min, m_max));
}

}  // namespace hostq::shm
