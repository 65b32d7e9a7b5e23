#pragma once

#include <chrono>
#include <string>

namespace chatd {

using SystemTime = std::chrono::system_clock::time_point;

/// RFC 3339 UTC with millisecond precision, e.g. "2026-11-23T14:26:22.123Z".
std::string FormatRfc3339(SystemTime time);

}  // namespace chatd
