#include "shm/mapped_region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <utility>

namespace hostq::shm {

MappedRegion::MappedRegion(MappedRegion&& o) noexcept
    : m_base(std::exchange(o.m_base, nullptr)), m_size(std::exchange(o.m_size, 0)) {}

MappedRegion& MappedRegion::operator=(MappedRegion&& o) noexcept {
  if (this != &o) {
    if (m_base) ::munmap(m_base, m_size);
    m_base = std::exchange(o.m_base, nullptr);
    m_size = std::exchange(o.m_size, 0);
  }
  return *this;
}

MappedRegion::~MappedRegion() {
  if (m_base) ::munmap(m_base, m_size);
}

Result<UniqueFd> MappedRegion::createMemfd(const char* name, std::size_t size) noexcept {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd.get() < 0) return SegmentError{SegmentErrc::SystemError, errno};
  if (::fchmod(fd.get(), 0600) != 0 || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return SegmentError{SegmentErrc::SystemError, errno};
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return SegmentError{SegmentErrc::SystemError, errno};
  return fd;
}

Result<std::size_t> MappedRegion::fileSize(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return SegmentError{SegmentErrc::SystemError, errno};
  if (st.st_size < 0) return SegmentErrc::BadSize;
  return static_cast<std::size_t>(st.st_size);
}

Result<MappedRegion> MappedRegion::map(int fd, std::size_t size) noexcept {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) return SegmentError{SegmentErrc::SystemError, errno};
  MappedRegion r;
  r.m_base = static_cast<std::byte*>(p);
  r.m_size = size;
  return r;
}

std::uint64_t randomGeneration() noexcept {
  std::uint64_t g = 0;
  if (::getrandom(&g, sizeof g, 0) != static_cast<ssize_t>(sizeof g)) {
    // getrandom on a 8-byte buffer only fails before the pool is seeded; fall back to
    // something that at least differs between starts.
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    g = (static_cast<std::uint64_t>(ts.tv_nsec) << 20) ^ static_cast<std::uint64_t>(ts.tv_sec) ^
        (static_cast<std::uint64_t>(::getpid()) << 40);
  }
  return g == 0 ? 1 : g;
}

}  // namespace hostq::shm
