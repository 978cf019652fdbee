#pragma once
// The verb registry of `hostq`. A verb is one file, src/cli/verb_<name>.cpp, that ends with
//
//   HOSTQ_CLI_VERB("name", "one-line description", setup);
//
// where `VerbMain setup(CLI::App& cmd, const CommonOptions& common)` declares the verb's flags on
// `cmd` and returns the function main() runs if the verb was chosen; its return value is the exit
// code. main() owns the common flags, the exit codes of usage errors (2) and turns an exception
// escaping the VerbMain into "hostq: <message>" and exit code 1. Registration happens in static
// initializers; the CMake glob over src/cli/*.cpp is the list of verbs.
#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "hostq/client.hpp"

namespace hostq::cli {

/// Flags every verb shares. Filled in by the parser; read them only from a VerbMain.
struct CommonOptions {
  std::string database_url;  ///< --database-url; see databaseUrl()
  std::string socket;        ///< --socket; see socketPath()
  std::string hostname;      ///< --hostname; see hostName()
  std::string schema;        ///< --schema: search_path for every connection; empty = server default

  /// --database-url, else $HOSTQ_DATABASE_URL, else "" (libpq defaults: PGHOST, PGDATABASE, …).
  std::string databaseUrl() const;
  /// --socket, else $HOSTQ_SOCKET, else under $XDG_RUNTIME_DIR or /tmp.
  std::string socketPath() const;
  /// --hostname, else gethostname().
  std::string hostName() const;
  /// A Client of databaseUrl() with the schema; it connects on first use.
  Client client() const;
};

/// Runs the chosen verb; returns the process exit code.
using VerbMain = std::function<int()>;

struct Verb {
  const char* name;
  const char* description;
  /// Declares the verb's flags and positionals on `cmd` (a subcommand already named and
  /// described) and returns what runs when the verb is chosen. `common` outlives the VerbMain.
  VerbMain (*setup)(CLI::App& cmd, const CommonOptions& common);
};

/// Adds a verb; called from HOSTQ_CLI_VERB's static initializer. Returns true (for the
/// initializer). Duplicate names abort at start, which a test of `hostq --help` catches.
bool registerVerb(const Verb& verb);
/// Every registered verb, sorted by name (the order of `hostq --help`).
std::vector<Verb> registeredVerbs();

/// A problem with the command line that CLI11 cannot see (e.g. TAG missing without --stdin):
/// main() prints it like CLI11's own errors and exits with 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace hostq::cli

#define HOSTQ_CLI_VERB(name, description, setup)                   \
  namespace {                                                      \
  [[maybe_unused]] const bool hostqCliVerbRegistered =             \
      ::hostq::cli::registerVerb({(name), (description), (setup)}); \
  }
