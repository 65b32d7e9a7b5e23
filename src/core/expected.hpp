// Expected<T>: a value or an Error. g++ 12 has no std::expected in C++20 mode, so this is
// the small subset chatd needs, with the same member names as std::expected.
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

#include "core/error.hpp"

namespace chatd {

struct Unexpected {
  Error error;
};

inline Unexpected MakeError(ErrorCode code, std::string message, std::string param = {}) {
  return Unexpected{Error{code, std::move(message), std::move(param)}};
}

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(const T& value) : storage_(std::in_place_index<0>, value) {}
  Expected(T&& value) : storage_(std::in_place_index<0>, std::move(value)) {}
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, Expected> &&
                                                    !std::is_same_v<std::decay_t<U>, Unexpected>>>
  Expected(U&& value) : storage_(std::in_place_index<0>, std::forward<U>(value)) {}
  Expected(Unexpected unexpected) : storage_(std::in_place_index<1>, std::move(unexpected.error)) {}

  bool has_value() const { return storage_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(storage_); }
  const T& value() const& { assert(has_value()); return std::get<0>(storage_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(storage_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { assert(!has_value()); return std::get<1>(storage_); }
  Error&& error() && { assert(!has_value()); return std::get<1>(std::move(storage_)); }

 private:
  std::variant<T, Error> storage_;
};

template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Unexpected unexpected) : error_(std::move(unexpected.error)), ok_(false) {}

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { assert(ok_); }
  const Error& error() const& { assert(!ok_); return error_; }
  Error&& error() && { assert(!ok_); return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace chatd
