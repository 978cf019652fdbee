// hostq hold ID… | --tag T | --strand S | --queue Q
#include "cli/hold_verb.hpp"

HOSTQ_CLI_VERB("hold", "Hold jobs: workers skip them until unhold",
               [](CLI::App& cmd, const hostq::cli::CommonOptions& common) {
                 return hostq::cli::holdVerb(cmd, common, true);
               })
