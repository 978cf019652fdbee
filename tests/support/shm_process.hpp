#pragma once
// Process helpers for the shm stress tests and benchmark: fork a child that runs a function and
// _exit()s with its result (never returns into the test runner), and pass an fd plus a small
// message over a Unix socket with SCM_RIGHTS, as the control plane does.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <utility>

namespace hostq::test {

template <class F>
pid_t forkChild(F&& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    rc = std::forward<F>(body)();
    ::_exit(rc);
  }
  return pid;
}

/// Exit status of a child (blocking), or -signal if it was killed, or -1000 on error.
inline int waitExit(pid_t pid) {
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid) return -1000;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return -1000;
}

struct FdMessage {
  std::uint64_t generation = 0;
  std::uint32_t slot = 0;
};

inline bool sendFd(int sock, int fd, const FdMessage& msg) {
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{const_cast<FdMessage*>(&msg), sizeof msg};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return ::sendmsg(sock, &mh, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof msg);
}

/// Returns the received fd (>= 0) or -1; blocks.
inline int recvFd(int sock, FdMessage& msg) {
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&msg, sizeof msg};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  if (::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != static_cast<ssize_t>(sizeof msg)) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

}  // namespace hostq::test
