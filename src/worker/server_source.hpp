#pragma once
// Jobs from the host's server: the socket is the lifeline (hello, segment fd, EOF = death,
// fallback frames); the shared-memory slot carries requests and replies when it can.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hostq/config.hpp"
#include "hostq/worker_config.hpp"
#include "protocol/messages.hpp"
#include "worker/job_source.hpp"

namespace hostq::worker {

class ServerSource final : public JobSource {
 public:
  /// `jobs_per_request`: the most jobs one request takes through the ring (1…256).
  ServerSource(std::string socket_path, std::string name, WorkerConfig config, Transport transport,
               int interrupt_fd, int jobs_per_request = protocol::kMaxJobsPerReserve);
  ~ServerSource() override;
  NextStatus next(Job& out) override;
  void report(const JobResult& result) override;
  bool abortRunning(JobId job, const std::string& error) noexcept override;
  void close() override;
  const std::string& name() const override { return m_name; }

  struct Impl;

 private:
  std::string m_name;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace hostq::worker
