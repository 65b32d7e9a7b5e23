// A transparent string hash, so maps keyed by std::string are searched with a
// std::string_view without building a string (C++20 heterogeneous unordered lookup).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace chatd::cache {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
  std::size_t operator()(const std::string& text) const noexcept { return (*this)(std::string_view(text)); }
};

template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

}  // namespace chatd::cache
