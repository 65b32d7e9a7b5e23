#pragma once

#include <string>
#include <string_view>

namespace chatd {

/// A new UUIDv7 (RFC 9562) as 36 lower-case characters: millisecond timestamp first, so
/// ids sort by creation time and index well. Thread-safe; not for secrets.
std::string NewUuidV7();

/// True when `text` has the 8-4-4-4-12 hex shape of a UUID.
bool LooksLikeUuid(std::string_view text);

}  // namespace chatd
