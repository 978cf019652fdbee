#pragma once
// The one owner of a file descriptor: a segment's memfd, a pidfd, a socket, an fd received over
// SCM_RIGHTS must not leak on any path. Header-only and dependency-free (the shm library uses it).
#include <unistd.h>

#include <utility>

namespace hostq {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : m_fd(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : m_fd(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return m_fd; }
  bool valid() const noexcept { return m_fd >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  /// Gives up ownership: the caller closes the returned fd.
  int release() noexcept { return std::exchange(m_fd, -1); }
  /// Closes the fd held (close errors are not actionable here) and takes `fd`.
  void reset(int fd = -1) noexcept {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = fd;
  }

 private:
  int m_fd = -1;
};

}  // namespace hostq
