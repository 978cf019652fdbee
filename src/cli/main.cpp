// `hostq`: the command line. Common flags and exit codes live here; each verb is its own file
// (see verbs.hpp).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <cstring>

#include "cli/verbs.hpp"
#include "common/log.hpp"
#include "hostq/config.hpp"
#include "hostq/error.hpp"

namespace hostq::cli {

namespace {

std::vector<Verb>& registry() {
  // Function-local: verbs register from other translation units' static initializers.
  static std::vector<Verb> verbs;
  return verbs;
}

}  // namespace

bool registerVerb(const Verb& verb) {
  for (const auto& v : registry()) {
    if (std::strcmp(v.name, verb.name) == 0) {
      std::fprintf(stderr, "hostq: verb \"%s\" registered twice\n", verb.name);
      std::abort();
    }
  }
  registry().push_back(verb);
  return true;
}

std::vector<Verb> registeredVerbs() {
  auto verbs = registry();
  std::sort(verbs.begin(), verbs.end(), [](const Verb& a, const Verb& b) { return std::strcmp(a.name, b.name) < 0; });
  return verbs;
}

std::string CommonOptions::databaseUrl() const { return resolveDatabaseUrl(database_url); }
std::string CommonOptions::socketPath() const { return resolveSocketPath(socket); }
std::string CommonOptions::hostName() const { return resolveHostname(hostname); }

Client CommonOptions::client() const {
  ClientOptions o;
  o.database_url = databaseUrl();
  o.schema = schema;
  o.application_name = "hostq-cli";
  return Client(std::move(o));
}

namespace {

// libpq messages end in '\n' and often carry a DETAIL line; the contract is one line on stderr.
std::string oneLine(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  for (std::size_t i = 0; (i = text.find('\n', i)) != std::string::npos;) {
    std::size_t j = i;
    while (j < text.size() && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    text.replace(i, j - i, " ");
  }
  return text;
}

constexpr const char* kFooter = R"(Environment:
  HOSTQ_DATABASE_URL  database URL when --database-url is not given (else libpq's PG* defaults)
  HOSTQ_SOCKET        server socket when --socket is not given
  HOSTQ_LOG_LEVEL     trace, debug, info (default), warn, error, off

Exit codes: 0 success, 1 error, 2 usage error.)";

int run(int argc, char** argv) {
  CLI::App app("hostq: PostgreSQL job queue server and tools for one host", "hostq");
  app.footer(kFooter);
  app.require_subcommand(1);
  // Common flags may follow the verb: `hostq jobs --schema s` as well as `hostq --schema s jobs`.
  app.fallthrough();
  CommonOptions common;
  app.add_option("--database-url", common.database_url, "libpq URL or key=value string (else $HOSTQ_DATABASE_URL)");
  app.add_option("--socket", common.socket, "server socket path (else $HOSTQ_SOCKET, else the runtime dir)");
  app.add_option("--hostname", common.hostname, "host name used in lock names (else gethostname())");
  app.add_option("--schema", common.schema, "PostgreSQL schema (search_path) holding the jobs tables");

  std::vector<std::pair<CLI::App*, VerbMain>> mains;
  for (const auto& verb : registeredVerbs()) {
    CLI::App* cmd = app.add_subcommand(verb.name, verb.description);
    mains.emplace_back(cmd, verb.setup(*cmd, common));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (105, 109, …) mean nothing to a shell script; ours are 0/1/2.
    return app.exit(e) == 0 ? 0 : 2;
  }

  for (auto& [cmd, main] : mains) {
    if (!cmd->parsed()) continue;
    try {
      return main();
    } catch (const UsageError& e) {
      std::fprintf(stderr, "hostq %s: %s\nRun with --help for more information.\n", cmd->get_name().c_str(), oneLine(e.what()).c_str());
      return 2;
    } catch (const DbError& e) {
      std::fprintf(stderr, "hostq %s: database error: %s\n", cmd->get_name().c_str(), oneLine(e.what()).c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "hostq %s: %s\n", cmd->get_name().c_str(), oneLine(e.what()).c_str());
      return 1;
    }
  }
  return 2;  // unreachable: require_subcommand(1)
}

}  // namespace
}  // namespace hostq::cli

int main(int argc, char** argv) {
  hostq::log::init("hostq");
  return hostq::cli::run(argc, argv);
}
