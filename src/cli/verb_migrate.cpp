// hostq migrate: create or upgrade the schema.
#include <cstdio>

#include "cli/verbs.hpp"

namespace hostq::cli {
namespace {

// Double-quoted identifier: --schema comes from a user and ends up in SQL text.
std::string quoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

VerbMain setup(CLI::App& cmd, const CommonOptions& common) {
  cmd.footer("Safe to run again and from several hosts at once; prints the version it left the schema at.");
  return [&common] {
    auto store = common.connectStore();
    // search_path naming a schema that does not exist yet is legal, and CREATE TABLE would then
    // have nowhere to go: create it, so `--schema` works on an empty database.
    // The one statement built here: an identifier cannot be a parameter. (The store's connection
    // drops NOTICEs, so IF NOT EXISTS stays quiet on every run after the first.)
    if (!common.schema.empty()) store->exec("CREATE SCHEMA IF NOT EXISTS " + quoteIdent(common.schema));
    const int applied = store->migrate();
    const int version = store->schemaVersion();
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
