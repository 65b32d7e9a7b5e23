// The list convention every list endpoint follows: `?limit=&cursor=` in, and
// {"data": [...], "next_cursor": "..." | null} out. A cursor is opaque to clients; the
// store encodes where the next page starts (e.g. the last row's sort key and id).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "core/page.hpp"
#include "http/message.hpp"

namespace chatd::api {

inline constexpr std::size_t kDefaultPageSize = 20;
inline constexpr std::size_t kMaxPageSize = 100;

/// Reads `limit` (1..kMaxPageSize, default kDefaultPageSize) and `cursor` from the query
/// string; kInvalidArgument naming the parameter otherwise.
Expected<PageRequest> ParsePageRequest(const http::Request& request);

/// {"data":<data_json>,"next_cursor":...}; `data_json` is an already-serialised array.
std::string ListBody(std::string_view data_json, std::string_view next_cursor);

}  // namespace chatd::api
