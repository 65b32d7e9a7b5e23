#include "api/search_api.hpp"

#include <string>

#include "api/guard.hpp"
#include "api/pagination.hpp"
#include "core/json.hpp"

namespace chatd::api {

using accounts::Principal;

namespace {

void WriteHit(JsonWriter& json, const chat::SearchHit& hit) {
  json.BeginObject()
      .Field("type", hit.message_id ? "message" : "title")
      .Field("conversation_id", hit.conversation_id)
      .Field("conversation_title", hit.conversation_title);
  json.NullableField("message_id", hit.message_id);
  json.NullableField("role", hit.role);
  json.Field("snippet", hit.snippet).Field("score", hit.score).Field("created_at", hit.created_at).EndObject();
}

}  // namespace

Task<http::Response> SearchApi::Search(http::Request& request, const Principal& caller) {
  auto page = ParsePageRequest(request);
  if (!page) co_return ErrorResponse(page.error());
  const std::string q = request.Query("q").value_or("");
  auto hits = co_await search_.Search(caller.user_id, q, *page);
  if (!hits) co_return ErrorResponse(hits.error());
  JsonWriter data;
  data.BeginArray();
  for (const auto& hit : hits->items) WriteHit(data, hit);
  data.EndArray();
  co_return http::Response::Json(200, ListBody(data.str(), hits->next_cursor));
}

}  // namespace chatd::api
