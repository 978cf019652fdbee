// Build-time tool: turns src/store/sql/*.sql into the statement catalog (store/sql_catalog.hpp).
//   embed_statements NAMES_HPP STATEMENTS_CPP FILE.sql...
//
// A file is a list of blocks, each opened by a header line:
//   -- name: NAME        a statement, prepared as hostq_NAME
//   -- fragment: NAME    text pasted where a statement (or fragment) says {{NAME}}
// Lines that are only a `--` comment are dropped from the embedded text, so they document the
// statement without reaching the server. A block's text ends at the next header; a trailing `;`
// is dropped. Any mistake (a duplicate name, an empty block, SQL before the first header, an
// unknown or unused fragment) fails the build with FILE:LINE.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Block {
  bool fragment = false;
  std::string name;
  std::string file;
  int line = 0;
  std::string text;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  std::cerr << where << ": error: " << what << "\n";
  std::exit(1);
}

std::string where(const Block& b) { return b.file + ":" + std::to_string(b.line); }

std::string trimmed(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

bool isComment(const std::string& line) { return trimmed(line).rfind("--", 0) == 0; }

void finish(Block& b, std::vector<Block>& out) {
  if (b.name.empty()) return;
  b.text = trimmed(b.text);
  if (!b.text.empty() && b.text.back() == ';') b.text = trimmed(b.text.substr(0, b.text.size() - 1));
  if (b.text.empty()) fail(where(b), "block \"" + b.name + "\" has no SQL");
  out.push_back(b);
  b = Block{};
}

void parse(const std::string& path, std::vector<Block>& out) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot read");
  static const std::regex kHeader(R"(^--\s*(name|fragment):\s*(\S*)\s*$)");
  static const std::regex kName(R"(^[a-z][a-z0-9_]*$)");
  const std::string file = std::filesystem::path(path).filename().string();
  Block b;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::smatch m;
    if (std::regex_match(line, m, kHeader)) {
      finish(b, out);
      if (!std::regex_match(m[2].str(), kName)) {
        fail(file + ":" + std::to_string(n), "\"" + m[2].str() + "\" is not a name (lower case, digits, _)");
      }
      b = Block{m[1] == "fragment", m[2].str(), file, n, ""};
    } else if (isComment(line) || trimmed(line).empty()) {
      if (!b.name.empty() && !isComment(line)) b.text += "\n";
    } else if (b.name.empty()) {
      fail(file + ":" + std::to_string(n), "SQL outside a `-- name:` or `-- fragment:` block");
    } else {
      b.text += line + "\n";
    }
  }
  finish(b, out);
}

/// Pastes fragments in, recursively; `used` collects the fragments that were.
std::string expand(const Block& b, const std::map<std::string, const Block*>& fragments,
                   std::map<std::string, bool>& used, int depth = 0) {
  if (depth > 8) fail(where(b), "fragments nest too deep (a cycle?)");
  static const std::regex kUse(R"(\{\{([a-z0-9_]+)\}\})");
  std::string out;
  std::string rest = b.text;
  std::smatch m;
  while (std::regex_search(rest, m, kUse)) {
    const auto it = fragments.find(m[1].str());
    if (it == fragments.end()) fail(where(b), "\"" + b.name + "\" uses unknown fragment {{" + m[1].str() + "}}");
    used[it->first] = true;
    out += m.prefix().str() + expand(*it->second, fragments, used, depth + 1);
    rest = m.suffix().str();
  }
  out += rest;
  if (out.find("{{") != std::string::npos) fail(where(b), "\"" + b.name + "\" has a stray {{");
  return out;
}

void writeIfChanged(const std::string& path, const std::string& content) {
  {
    std::ifstream old(path);
    std::stringstream s;
    s << old.rdbuf();
    if (old && s.str() == content) return;
  }
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::trunc);
  out << content;
  if (!out) fail(path, "cannot write");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) fail("embed_statements", "usage: embed_statements NAMES_HPP STATEMENTS_CPP FILE.sql...");
  std::vector<Block> blocks;
  for (int i = 3; i < argc; ++i) parse(argv[i], blocks);

  std::map<std::string, const Block*> fragments, statements;
  for (const auto& b : blocks) {
    for (auto* seen : {&fragments, &statements}) {
      if (auto it = seen->find(b.name); it != seen->end()) {
        fail(where(b), "\"" + b.name + "\" is defined again (first at " + where(*it->second) + ")");
      }
    }
    (b.fragment ? fragments : statements)[b.name] = &b;
  }
  if (statements.empty()) fail("embed_statements", "no statements");

  std::map<std::string, bool> used;
  std::string names =
      "// generated by cmake/embed_statements.cpp from src/store/sql/*.sql; do not edit\n"
      "#pragma once\n#include <array>\n#include <string_view>\n\n"
      "namespace hostq::store::generated {\n"
      "inline constexpr std::array<std::string_view, " + std::to_string(statements.size()) +
      "> kStatementNames{\n";
  std::string source =
      "// generated by cmake/embed_statements.cpp from src/store/sql/*.sql; do not edit\n"
      "#include \"store/sql_catalog.hpp\"\n\n"
      "namespace hostq::store::generated {\n"
      "extern const Statement kStatements[];\n"
      "const Statement kStatements[] = {\n";
  for (const auto& [name, b] : statements) {
    const std::string text = expand(*b, fragments, used);
    if (text.find(")hostqsql\"") != std::string::npos) fail(where(*b), "text contains )hostqsql\"");
    names += "    \"" + name + "\",\n";
    source += "    {\"hostq_" + name + "\", R\"hostqsql(" + text + ")hostqsql\"},  // " + where(*b) + "\n";
  }
  for (const auto& [name, b] : fragments) {
    if (!used[name]) fail(where(*b), "fragment \"" + name + "\" is used by no statement");
  }
  names += "};\n}  // namespace hostq::store::generated\n";
  source += "};\n}  // namespace hostq::store::generated\n";
  writeIfChanged(argv[1], names);
  writeIfChanged(argv[2], source);
  return 0;
}
