// Helpers for list queries shared by repositories: keyset cursors and LIKE patterns.
//
// A keyset cursor is opaque to clients: base64url (no padding) of "<sort key>|<id>" of the
// last row of a page, where the sort key is a timestamp this process wrote (RFC 3339 UTC
// with milliseconds, 24 characters), so it compares exactly in both dialects. A cursor that
// does not decode is kInvalidArgument with param "cursor".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "core/page.hpp"

namespace chatd::store {

struct KeysetCursor {
  std::string sort_key;  // an RFC 3339 timestamp
  std::string id;
};

std::string EncodeKeysetCursor(std::string_view sort_key, std::string_view id);
Expected<KeysetCursor> DecodeKeysetCursor(std::string_view cursor);

/// The page size to ask the database for (the caller fetches one more row to know whether
/// a next page exists): `page.limit`, 20 when 0, at most 1000.
std::int64_t KeysetPageLimit(const PageRequest& page);

/// A LIKE pattern matching `text` as a substring: % and _ (and the escape \) made literal,
/// ASCII lower-cased. Use with `LIKE $n ESCAPE '\'` against a lower-cased column.
std::string LikeSubstringPattern(std::string_view text);

}  // namespace chatd::store
