#pragma once
// One filled-in instance of every protocol message, for round-trip tests and as fuzz seeds.
#include <vector>

#include "protocol/messages.hpp"

namespace hostq::test {

inline std::vector<protocol::Message> sampleMessages() {
  using namespace hostq::protocol;
  WorkerConfig cfg;
  cfg.queue = "mail";
  cfg.min_priority = 5;
  cfg.max_priority = 20;
  cfg.workers = 3;
  cfg.extra = {{"region", "eu"}, {"", "empty key is legal"}};
  JobAssigned job;
  job.id = 1234567890123;
  job.tag = "Mailer#deliver";
  job.payload = std::string("bin\0ary", 7);
  job.attempts = 2;
  job.max_attempts = 5;
  job.priority = -3;
  job.queue = "mail";
  job.strand = "user:42";
  job.singleton = std::nullopt;
  job.run_at_us = 1'700'000'000'000'000;
  job.created_at_us = 1'699'999'999'000'000;
  job.expires_at_us = 0;
  job.locked_by = "host-a:4242";
  job.request_seq = 77;
  JobAssigned omitted = job;
  omitted.payload.clear();
  omitted.payload_omitted = true;
  omitted.singleton = "nightly";
  omitted.strand.reset();
  return {
      Hello{"host-a:4242", 4242, kProtocolVersion, cfg, Transport::Socket},
      Hello{"h:1", 1, kProtocolVersion, WorkerConfig{}, Transport::Shm},
      Reserve{9, 123456789},
      Complete{42, 7},
      Fail{42, 8, "boom: \"quoted\"\n", true, false, 0},
      Fail{43, 9, "", false, true, 1'700'000'000'000'000},
      Heartbeat{},
      FetchPayload{99},
      StatsRequest{},
      Goodbye{},
      HelloOk{3u, 0xDEADBEEFCAFEull, 777},
      HelloOk{std::nullopt, 1, 2},
      HelloRefused{"protocol version 9 not supported"},
      job,
      omitted,
      Payload{99, std::string(3000, 'p')},
      ResultAck{{1, 2, -3, 1LL << 62}},
      ResultAck{{}},
      ResultAck{{5, 6, 7},
                {FailResult{5, FailOutcome::Rescheduled, 2, TimePoint{std::chrono::microseconds{1'700'000'000'000'000}}},
                 FailResult{6, FailOutcome::MovedToFailedJobs, 3, std::nullopt},
                 FailResult{7, FailOutcome::Mismatch, 0, std::nullopt}}},
      Notice{NoticeKind::Drain, "deploy"},
      Notice{NoticeKind::Stop, ""},
      StatsReply{R"({"workers":3})"},
      Error{"malformed frame"},
  };
}

}  // namespace hostq::test
