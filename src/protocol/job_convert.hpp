#pragma once
// Job rows ↔ JobAssigned frames, job results ↔ Complete/Fail frames. The JobAssigned frame
// carries what a handler sees; the rest of the row stays in the database.
#include <cstddef>
#include <optional>
#include <string_view>

#include "hostq/job.hpp"
#include "hostq/job_result.hpp"
#include "protocol/messages.hpp"

namespace hostq::protocol {

/// Into an object that is reused from job to job: strings are assigned, so they keep their
/// buffers (the hand-off path allocates nothing once warm). Every field of `out` is written, so
/// nothing of the previous job survives.
void assignJobAssigned(const Job& job, std::uint64_t request_seq, JobAssigned& out);
void assignJob(const JobAssigned& assigned, Job& out);
/// encodedSize() of the JobAssigned frame assignJobAssigned() makes of `job` once its locked_by is
/// `locked_by`, without building it: the server sizes a reply record of several jobs before it
/// takes them.
std::size_t jobAssignedFrameSize(const Job& job, std::string_view locked_by) noexcept;
/// A Complete or a Fail frame; `seq` is the worker's result sequence.
Message toResultFrame(const JobResult& result, std::uint64_t seq);
/// The result a Complete or Fail frame carries; nullopt for any other message.
std::optional<JobResult> toJobResult(const Message& frame);

}  // namespace hostq::protocol
