#pragma once
// Job rows ↔ JobAssigned frames. The frame carries what a handler sees; the rest of the row stays
// in the database.
#include "hostq/job.hpp"
#include "protocol/messages.hpp"

namespace hostq::protocol {

JobAssigned toJobAssigned(const Job& job, std::uint64_t request_seq);
Job toJob(const JobAssigned& assigned);

/// The same conversions into an object that is reused from job to job: strings are assigned, so
/// they keep their buffers (the hand-off path allocates nothing once warm). Every field of `out`
/// is written, so nothing of the previous job survives.
void assignJobAssigned(const Job& job, std::uint64_t request_seq, JobAssigned& out);
void assignJob(const JobAssigned& assigned, Job& out);

}  // namespace hostq::protocol
