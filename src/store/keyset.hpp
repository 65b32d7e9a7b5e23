// Helpers for list queries shared by repositories: keyset cursors and LIKE patterns.
//
// A keyset cursor is opaque to clients: base64url (no padding) of "<sort key>|<id>" of the
// last row of a page, where the sort key is a timestamp this process wrote (RFC 3339 UTC
// with milliseconds, 24 characters), so it compares exactly in both dialects. A cursor that
// does not decode is kInvalidArgument with param "cursor".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"

namespace chatd::store {

struct KeysetCursor {
  std::string sort_key;  // an RFC 3339 timestamp
  std::string id;
};

std::string EncodeKeysetCursor(std::string_view sort_key, std::string_view id);
Expected<KeysetCursor> DecodeKeysetCursor(std::string_view cursor);

/// The opaque form of any cursor: base64url without padding, and back (nullopt when
/// `encoded` is not base64url or longer than 200 characters).
std::string EncodeCursorText(std::string_view plain);
std::optional<std::string> DecodeCursorText(std::string_view encoded);

/// The page size to ask the database for (the caller fetches one more row to know whether
/// a next page exists): `page.limit`, 20 when 0, at most 1000.
std::int64_t KeysetPageLimit(const PageRequest& page);

enum class SortOrder { kAscending, kDescending };

/// Finishes a keyset-paginated SELECT whose `sql` ends inside its WHERE clause: adds the
/// cursor's condition, then `ORDER BY <column>, id` and a LIMIT one row past the page (so
/// the reader can tell whether another page follows). Returns the page size; a cursor
/// that does not decode is kInvalidArgument with param "cursor".
Expected<std::int64_t> AppendKeysetPage(std::string& sql, Params& params, const PageRequest& page,
                                        std::string_view column, SortOrder order);

/// The page out of rows fetched after AppendKeysetPage: at most `limit` items, and the
/// cursor of the last one when more rows follow. `sort_key(item)` is its `column` value.
template <typename T, typename ReadRow, typename SortKey>
Page<T> ReadKeysetPage(const Result& rows, std::int64_t limit, ReadRow read_row, SortKey sort_key) {
  Page<T> page;
  for (std::size_t i = 0; i < rows.size() && static_cast<std::int64_t>(i) < limit; ++i) {
    page.items.push_back(read_row(rows, i));
  }
  if (static_cast<std::int64_t>(rows.size()) > limit && !page.items.empty()) {
    page.next_cursor = EncodeKeysetCursor(sort_key(page.items.back()), page.items.back().id);
  }
  return page;
}

/// A LIKE pattern matching `text` as a substring: % and _ (and the escape \) made literal,
/// ASCII lower-cased. Use with `LIKE $n ESCAPE '\'` against a lower-cased column.
std::string LikeSubstringPattern(std::string_view text);

}  // namespace chatd::store
