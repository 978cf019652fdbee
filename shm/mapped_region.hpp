#pragma once
// RAII for the segment's memfd and its mapping. With futex.cpp, the only place with syscalls.
#include <cstddef>
#include <cstdint>

#include "common/unique_fd.hpp"
#include "shm/result.hpp"

namespace hostq::shm {

class MappedRegion {
 public:
  MappedRegion() noexcept = default;
  MappedRegion(MappedRegion&& o) noexcept;
  MappedRegion& operator=(MappedRegion&& o) noexcept;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  ~MappedRegion();

  /// Creates an anonymous memfd of `size` bytes, mode 0600, sealed against resizing: a worker
  /// holding the fd must not be able to shrink it under the server (SIGBUS on access).
  static Result<UniqueFd> createMemfd(const char* name, std::size_t size) noexcept;
  /// Size of the file behind `fd` (fstat).
  static Result<std::size_t> fileSize(int fd) noexcept;
  /// MAP_SHARED read/write mapping of the first `size` bytes of `fd`, pre-faulted.
  static Result<MappedRegion> map(int fd, std::size_t size) noexcept;

  std::byte* data() const noexcept { return m_base; }
  std::size_t size() const noexcept { return m_size; }

 private:
  std::byte* m_base = nullptr;
  std::size_t m_size = 0;
};

/// 64 random bits from getrandom(), never 0.
std::uint64_t randomGeneration() noexcept;

}  // namespace hostq::shm
