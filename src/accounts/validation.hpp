// Input rules of accounts (docs/api.md "Validation"), as pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "core/time.hpp"
#include "core/utf8.hpp"  // ParseRfc3339, FormatRfc3339

namespace chatd::accounts {

inline constexpr std::size_t kMaxEmailLength = 254;
inline constexpr std::size_t kMaxNameLength = 100;

/// Trimmed and lower-cased (ASCII); at most 254 characters, exactly one '@', a non-empty
/// local part, a domain with a dot that neither starts nor ends it, no spaces or control
/// characters. kInvalidArgument with param "email" otherwise.
Expected<std::string> NormalizeEmail(std::string_view email);

/// At most `max` characters (code points), no control characters. kInvalidArgument with
/// `param` otherwise. `min` = 1 for names that may not be empty.
Expected<void> CheckName(std::string_view name, std::string_view param, std::size_t min = 0,
                         std::size_t max = kMaxNameLength);

}  // namespace chatd::accounts
