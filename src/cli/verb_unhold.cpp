// hostq unhold ID… | --tag T | --strand S | --queue Q
#include "cli/hold_verb.hpp"

HOSTQ_CLI_VERB("unhold", "Release held jobs",
               [](CLI::App& cmd, const hostq::cli::CommonOptions& common) {
                 return hostq::cli::holdVerb(cmd, common, false);
               })
