#pragma once
// Every public header of libhostq. Including the one a program needs is cheaper to compile;
// this one is for programs that would include most of them anyway.
#include "hostq/client.hpp"
#include "hostq/config.hpp"
#include "hostq/error.hpp"
#include "hostq/handler_registry.hpp"
#include "hostq/job.hpp"
#include "hostq/job_result.hpp"
#include "hostq/job_selector.hpp"
#include "hostq/job_state.hpp"
#include "hostq/new_job.hpp"
#include "hostq/outcome.hpp"
#include "hostq/pool.hpp"
#include "hostq/version.hpp"
#include "hostq/worker.hpp"
#include "hostq/worker_config.hpp"
