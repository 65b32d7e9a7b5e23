// UTF-8 text measured in code points, as limits on names and titles are stated.
#pragma once

#include <cstddef>
#include <string_view>

namespace chatd {

/// Code points in UTF-8 text (bytes that do not continue a sequence).
inline std::size_t Utf8Length(std::string_view text) {
  std::size_t length = 0;
  for (const char c : text) {
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++length;
  }
  return length;
}

}  // namespace chatd
