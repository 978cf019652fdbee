#pragma once
// Job rows ↔ JobAssigned frames. The frame carries what a handler sees; the rest of the row stays
// in the database.
#include "hostq/job.hpp"
#include "protocol/messages.hpp"

namespace hostq::protocol {

JobAssigned toJobAssigned(const Job& job, std::uint64_t request_seq);
Job toJob(const JobAssigned& assigned);

}  // namespace hostq::protocol
