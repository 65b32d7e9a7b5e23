#include "api/pagination.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/json.hpp"

namespace chatd::api {

Expected<PageRequest> ParsePageRequest(const http::Request& request) {
  PageRequest page;
  if (auto limit = request.Query("limit")) {
    std::size_t value = 0;
    const auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), value);
    if (ec != std::errc() || end != limit->data() + limit->size() || value < 1 || value > kMaxPageSize) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("limit must be an integer from 1 to {}", kMaxPageSize), "limit");
    }
    page.limit = value;
  }
  if (auto cursor = request.Query("cursor")) {
    if (cursor->size() > 512) return MakeError(ErrorCode::kInvalidArgument, "cursor is not valid", "cursor");
    page.cursor = std::move(*cursor);
  }
  return page;
}

std::string ListBody(std::string_view data_json, std::string_view next_cursor) {
  JsonWriter json;
  json.BeginObject().Key("data").Raw(data_json).Key("next_cursor");
  if (next_cursor.empty()) json.Null(); else json.String(next_cursor);
  json.EndObject();
  return std::move(json).str();
}

}  // namespace chatd::api
