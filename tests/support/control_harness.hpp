#pragma once
// Test helpers for the control plane: a fake owner that answers Reserve with a made-up job, a
// private socket directory, a server with that owner, and fork/wait helpers for client processes.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/control_server.hpp"
#include "support/wait.hpp"

namespace hostq::test {

/// mkdtemp'd 0700 directory, removed with its contents at scope exit.
struct TempSocketDir {
  std::string dir;
  TempSocketDir() {
    char tmpl[] = "/tmp/hostq-ctl-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~TempSocketDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string sock() const { return dir + "/ctl.sock"; }
};

/// The owner side, reduced to what the control plane needs: accept every Hello, answer Reserve
/// with a JobAssigned locked by the worker (unless `hold` is set), record everything.
class FakeOwner : public control::ControlHandler {
 public:
  control::ControlServer* server = nullptr;
  std::atomic<bool> hold{false};          ///< leave Reserves unanswered (workers stay in the long poll)
  std::uint64_t generation = 1;
  std::function<int(const protocol::Hello&)> segmentFd;  ///< fd to pass with HelloOk, or -1
  std::function<void(control::ConnId)> afterAccept;

  void onHello(control::ConnId id, protocol::Hello hello, control::PeerCred) override {
    {
      std::lock_guard lk(m);
      names[id] = hello.name;
      ++hellos;
    }
    int fd = segmentFd ? segmentFd(hello) : -1;
    protocol::HelloOk ok{fd >= 0 ? std::optional<std::uint32_t>(static_cast<std::uint32_t>(id)) : std::nullopt,
                         generation, static_cast<std::int32_t>(::getpid())};
    server->acceptHello(id, ok, fd);
    if (fd >= 0) ::close(fd);
    if (afterAccept) afterAccept(id);
  }
  void onMessage(control::ConnId id, protocol::Message msg) override {
    std::string name;
    {
      std::lock_guard lk(m);
      ++messages;
      name = names[id];
      if (std::holds_alternative<protocol::Complete>(msg)) ++completes;
      if (std::holds_alternative<protocol::Reserve>(msg)) ++reserves;
    }
    if (auto* r = std::get_if<protocol::Reserve>(&msg); r && !hold) {
      protocol::JobAssigned job;
      job.id = nextJob++;
      job.tag = "Test#run";
      job.payload = "payload-" + std::to_string(job.id);
      job.queue = "queue";
      job.locked_by = name;
      job.request_seq = r->request_seq;
      server->send(id, job);
    }
  }
  void onDisconnect(control::ConnId id, std::string reason) override {
    std::lock_guard lk(m);
    disconnects[id] = std::move(reason);
  }

  int helloCount() { std::lock_guard lk(m); return hellos; }
  int reserveCount() { std::lock_guard lk(m); return reserves; }
  int completeCount() { std::lock_guard lk(m); return completes; }
  std::size_t disconnectCount() { std::lock_guard lk(m); return disconnects.size(); }
  std::map<control::ConnId, std::string> disconnectReasons() { std::lock_guard lk(m); return disconnects; }

 private:
  std::mutex m;
  std::map<control::ConnId, std::string> names;
  std::map<control::ConnId, std::string> disconnects;
  int hellos = 0, messages = 0, completes = 0, reserves = 0;
  std::atomic<std::int64_t> nextJob{1000};
};

/// A ControlServer on a private socket with a FakeOwner behind it, in this process; stopped at
/// scope exit. The one control-server fixture of the control tests.
struct FakeControlServer {
  TempSocketDir dir;
  FakeOwner owner;
  std::unique_ptr<control::ControlServer> server;

  /// Starts the server on dir.sock() (whatever `o.socket_path` says).
  void start(control::ControlServerOptions o = {}) {
    o.socket_path = dir.sock();
    server = std::make_unique<control::ControlServer>(o, owner);
    owner.server = server.get();
    server->start();
  }
  void stop() {
    if (server) server->stop();
  }
  ~FakeControlServer() { stop(); }
};

/// Runs `body` in a child process; its return value is the exit code. The child never returns
/// into the test framework.
inline pid_t forkChild(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (...) {
      rc = 98;
    }
    ::_exit(rc);
  }
  return pid;
}

/// Exit code of `pid`, or -1 if it did not end within `timeout` (it is then killed), or
/// 128+signal if a signal ended it.
inline int waitChild(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(8)) {
  int status = 0;
  bool done = waitUntil([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -2;
}

inline protocol::Hello helloFor(const std::string& name, protocol::Transport t = protocol::Transport::Socket) {
  protocol::Hello h;
  h.name = name;
  h.pid = static_cast<std::int32_t>(::getpid());
  h.transport = t;
  return h;
}

}  // namespace hostq::test
