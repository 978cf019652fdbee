// hostq migrate: create or upgrade the schema.
#include <cstdio>

#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  cmd.footer("Safe to run again and from several hosts at once; prints the version it left the schema at.");
  return [&common] {
    // The client creates the --schema if it does not exist yet.
    auto client = common.client();
    const int applied = client.migrate();
    const int version = client.schemaVersion();
    if (applied == 0) {
      std::printf("schema at version %d, nothing to do\n", version);
    } else {
      std::printf("migrated to version %d (%d migration%s applied)\n", version, applied, applied == 1 ? "" : "s");
    }
    return 0;
  };
}

}  // namespace
}  // namespace hostq::cli

HOSTQ_CLI_VERB("migrate", "Create or upgrade the jobs schema", hostq::cli::setup)
