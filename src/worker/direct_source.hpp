#pragma once
// inst-jobs' InProcess work queue: the worker reserves and completes on its own connection, one
// statement per step. The baseline the server's batching is measured against.
#include <memory>
#include <string>

#include "store/store.hpp"
#include "hostq/worker_config.hpp"
#include "worker/job_source.hpp"

namespace hostq::worker {

class DirectSource final : public JobSource {
 public:
  DirectSource(std::string url, StoreOptions options, std::string name, WorkerConfig config,
               int interrupt_fd);
  NextStatus next(Job& out) override;
  void report(const JobResult& result) override;
  bool abortRunning(JobId job, const std::string& error) noexcept override;
  void close() override;
  const std::string& name() const override { return m_name; }

 private:
  /// Waits for a NOTIFY, the interrupt fd, or the poll interval.
  bool waitForWork();
  std::string m_url;
  StoreOptions m_options;
  std::string m_name;
  WorkerConfig m_config;
  int m_interruptFd;
  std::unique_ptr<Store> m_store;
};

}  // namespace hostq::worker
