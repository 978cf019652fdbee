#pragma once
// A second, independent mapping of a segment fd, for tests that play a hostile or broken
// worker by writing straight into the layout.
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstddef>

#include "shm/layout.hpp"

namespace hostq::test {

class ShmRawView {
 public:
  explicit ShmRawView(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return;
    m_size = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) m_base = static_cast<std::byte*>(p);
  }
  ~ShmRawView() {
    if (m_base) ::munmap(m_base, m_size);
  }
  ShmRawView(const ShmRawView&) = delete;
  ShmRawView& operator=(const ShmRawView&) = delete;

  bool ok() const { return m_base != nullptr; }
  std::byte* base() const { return m_base; }
  std::size_t size() const { return m_size; }
  shm::SegmentHeader& header() const { return *reinterpret_cast<shm::SegmentHeader*>(m_base); }
  shm::SlotLayout& slot(std::uint32_t i) const {
    return *reinterpret_cast<shm::SlotLayout*>(m_base + sizeof(shm::SegmentHeader) +
                                               std::size_t{i} * sizeof(shm::SlotLayout));
  }

 private:
  std::byte* m_base = nullptr;
  std::size_t m_size = 0;
};

}  // namespace hostq::test
