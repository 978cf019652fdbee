#pragma once
// A minimal expected-like type: the decoder runs on bytes from untrusted peers and from shared
// memory, so failure is an ordinary outcome and never an exception (std::expected is C++23).
#include <cassert>
#include <utility>
#include <variant>

namespace hostq::protocol {

template <class E>
struct Err {
  E error;
};
template <class E>
Err(E) -> Err<E>;

template <class T, class E>
class [[nodiscard]] Result {
 public:
  Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  template <class E2>
  Result(Err<E2> e) : m_v(std::in_place_index<1>, E(std::move(e.error))) {}  // NOLINT

  bool ok() const noexcept { return m_v.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return *std::get_if<0>(&m_v); }
  const T& value() const& { assert(ok()); return *std::get_if<0>(&m_v); }
  T&& value() && { assert(ok()); return std::move(*std::get_if<0>(&m_v)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const E& error() const& { assert(!ok()); return *std::get_if<1>(&m_v); }
  E&& error() && { assert(!ok()); return std::move(*std::get_if<1>(&m_v)); }

 private:
  std::variant<T, E> m_v;
};

}  // namespace hostq::protocol
