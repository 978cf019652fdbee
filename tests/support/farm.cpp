#include "support/farm.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <sstream>

#include "support/wait.hpp"

namespace hostq::test {

ScratchDir::ScratchDir() {
  char tmpl[] = "/tmp/hqt.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  m_path = tmpl;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(m_path, ec);
}

std::string slurpFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

namespace {

void redirect(const std::string& out, const std::string& err, const std::string& in = "/dev/null") {
  const int fo = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  const int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  const int fi = ::open(in.c_str(), O_RDONLY);
  if (fo < 0 || fe < 0 || fi < 0) ::_exit(126);
  ::dup2(fi, 0);
  ::dup2(fo, 1);
  ::dup2(fe, 2);
  ::close(fi);
  ::close(fo);
  ::close(fe);
}

/// stdout and stderr both appended to one file (a log several processes of a test may share).
void appendBoth(const std::string& log, const char* in) {
  const int fo = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int fi = ::open(in, O_RDONLY);
  if (fo < 0 || fi < 0) ::_exit(126);
  ::dup2(fi, 0);
  ::dup2(fo, 1);
  ::dup2(fo, 2);
  ::close(fi);
  ::close(fo);
}

}  // namespace

Proc Proc::exec(const ScratchDir& dir, const std::string& label, const std::vector<std::string>& argv,
                const ExecOptions& options) {
  return spawn(dir.file(label + ".out"), dir.file(label + ".err"), argv, options);
}

Proc Proc::execLogged(const std::string& log, const std::vector<std::string>& argv, const ExecOptions& options) {
  return spawn(log, log, argv, options);
}

Proc Proc::spawn(const std::string& out, const std::string& err, const std::vector<std::string>& argv,
                 const ExecOptions& options) {
  Proc p;
  p.m_out = out;
  p.m_err = err;
  const bool oneLog = out == err;
  const pid_t parent = ::getpid();
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  // A changed variable must not also stay in its inherited form: getenv() finds the first one.
  std::vector<std::string> envStore;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const bool changed = std::any_of(options.env.begin(), options.env.end(), [&](const auto& kv) { return entry.rfind(kv.first + "=", 0) == 0; });
    if (!changed) envStore.push_back(entry);
  }
  for (auto& [k, v] : options.env)
    if (!v.empty()) envStore.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& e : envStore) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  p.m_pid = ::fork();
  if (p.m_pid == 0) {
    if (options.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
    }
    if (options.own_process_group) ::setpgid(0, 0);
    const char* in = options.stdin_path.empty() ? "/dev/null" : options.stdin_path.c_str();
    if (oneLog) appendBoth(p.m_out, in);
    else redirect(p.m_out, p.m_err, in);
    ::execve(cargs[0], cargs.data(), cenv.data());
    ::_exit(127);
  }
  if (options.own_process_group && p.m_pid > 0) ::setpgid(p.m_pid, p.m_pid);  // before the child's own, maybe
  return p;
}

Proc Proc::fork(const ScratchDir& dir, const std::string& label, std::function<int()> body) {
  Proc p;
  p.m_out = dir.file(label + ".out");
  p.m_err = dir.file(label + ".err");
  p.m_pid = ::fork();
  if (p.m_pid == 0) {
    redirect(p.m_out, p.m_err);
    int code = 99;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child threw: %s\n", e.what());
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return p;
}

Proc& Proc::operator=(Proc&& o) noexcept {
  if (this != &o) {
    if (m_pid > 0 && !m_code) {
      ::kill(m_pid, SIGKILL);
      ::waitpid(m_pid, nullptr, 0);
    }
    m_pid = std::exchange(o.m_pid, -1);
    m_code = std::exchange(o.m_code, std::nullopt);
    m_signal = std::exchange(o.m_signal, std::nullopt);
    m_out = std::move(o.m_out);
    m_err = std::move(o.m_err);
  }
  return *this;
}

Proc::~Proc() {
  if (m_pid > 0 && !m_code) {
    ::kill(m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
  }
}

bool Proc::running() {
  if (m_pid <= 0 || m_code) return false;
  int st = 0;
  const pid_t r = ::waitpid(m_pid, &st, WNOHANG);
  if (r == 0) return true;
  m_code = r == m_pid ? (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) : -1;
  if (r == m_pid && WIFSIGNALED(st)) m_signal = WTERMSIG(st);
  return false;
}

void Proc::signal(int sig) const {
  if (m_pid > 0 && !m_code) ::kill(m_pid, sig);
}

std::optional<int> Proc::wait(std::chrono::milliseconds timeout) {
  waitUntil([&] { return !running(); }, timeout);
  return m_code;
}

std::string Proc::out() const { return slurpFile(m_out); }
std::string Proc::err() const { return slurpFile(m_err); }

std::string Proc::describe() const {
  return "pid " + std::to_string(m_pid) + ", exit " + (m_code ? std::to_string(*m_code) : "(running)") +
         "\nstdout:\n" + out() + "\nstderr:\n" + err();
}

}  // namespace hostq::test
