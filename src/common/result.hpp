#pragma once
// The one expected-like type (std::expected is C++23). The decoder runs on bytes from untrusted
// peers and the shm calls on memory a peer can scribble on, so failure is an ordinary outcome and
// never an exception. Header-only and dependency-free (the shm library uses it).
//
// A failure is built from Err{e}. Where no value could be mistaken for an error (T is not
// constructible from it), the error may also be returned bare: `return SegmentErrc::BadSize;`.
#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace hostq {

template <class E>
struct Err {
  E error;
};
template <class E>
Err(E) -> Err<E>;

template <class T, class E>
class [[nodiscard]] Result {
 public:
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit by design
      : m_v(std::in_place_index<0>, std::move(value)) {}
  template <class E2>
  Result(Err<E2> e) : m_v(std::in_place_index<1>, E(std::move(e.error))) {}  // NOLINT
  /// A bare error, when it cannot be read as a value.
  template <class U>
    requires(!std::is_same_v<std::remove_cvref_t<U>, Result> && !std::is_constructible_v<T, U> &&
             std::is_constructible_v<E, U>)
  Result(U&& e) : m_v(std::in_place_index<1>, E(std::forward<U>(e))) {}  // NOLINT

  bool ok() const noexcept { return m_v.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  /// @pre ok()
  T& value() & { assert(ok()); return *std::get_if<0>(&m_v); }
  const T& value() const& { assert(ok()); return *std::get_if<0>(&m_v); }
  T&& value() && { assert(ok()); return std::move(*std::get_if<0>(&m_v)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  /// @pre !ok()
  const E& error() const& { assert(!ok()); return *std::get_if<1>(&m_v); }
  E&& error() && { assert(!ok()); return std::move(*std::get_if<1>(&m_v)); }

 private:
  std::variant<T, E> m_v;
};

}  // namespace hostq
