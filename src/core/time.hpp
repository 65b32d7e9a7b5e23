#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace chatd {

using SystemTime = std::chrono::system_clock::time_point;

/// RFC 3339 UTC with millisecond precision, e.g. "2026-11-23T14:26:22.123Z".
std::string FormatRfc3339(SystemTime time);

/// RFC 3339 date-time: "2026-01-02T03:04:05Z", with optional fraction and a "Z" or
/// "+hh:mm" offset ('t' and 'z' accepted too). nullopt when malformed or out of range.
std::optional<SystemTime> ParseRfc3339(std::string_view text);

}  // namespace chatd
