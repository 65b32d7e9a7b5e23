#include "api/conversations_api.hpp"

#include <simdjson.h>

#include "api/guard.hpp"
#include "api/json_fields.hpp"
#include "api/pagination.hpp"
#include "core/json.hpp"
#include "http/json_body.hpp"

namespace chatd::api {

using accounts::Principal;

namespace {

http::Response ConversationResponse(int status, const chat::Conversation& conversation) {
  JsonWriter json;
  WriteConversation(json, conversation);
  return http::Response::Json(status, std::move(json).str());
}

Expected<JsonObject> BodyObject(const http::Request& request) {
  auto body = http::ParseJsonBody(request, http::ThreadJsonParser());
  if (!body) return Unexpected{std::move(body).error()};
  return JsonObject::From(*body);
}

// "true" / "false" (absent: nullopt); anything else is 400 naming the parameter.
Expected<std::optional<bool>> QueryBool(const http::Request& request, std::string_view name) {
  const auto value = request.Query(name);
  if (!value) return std::optional<bool>();
  if (*value == "true") return std::optional<bool>(true);
  if (*value == "false") return std::optional<bool>(false);
  return MakeError(ErrorCode::kInvalidArgument, std::string(name) + " must be true or false", std::string(name));
}

// The fields POST and PATCH share. String views point into the thread's JSON parser:
// copied here, before any co_await.
struct Fields {
  std::optional<std::string> title;
  std::optional<std::string> model;
  std::optional<std::string> system_prompt;
  bool clear_system_prompt = false;   // "system_prompt": null
  std::optional<std::string> params;  // the JSON text of whatever value was sent
};

Expected<void> CopyString(const JsonObject& body, std::string_view key, std::optional<std::string>& out) {
  auto value = body.OptionalString(key);
  if (!value) return Unexpected{std::move(value).error()};
  if (*value) out = std::string(**value);
  return {};
}

Expected<Fields> ReadFields(const JsonObject& body) {
  Fields fields;
  if (auto ok = CopyString(body, "title", fields.title); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = CopyString(body, "model", fields.model); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = CopyString(body, "system_prompt", fields.system_prompt); !ok) return Unexpected{std::move(ok).error()};
  fields.clear_system_prompt = body.IsNull("system_prompt");
  if (auto params = body.OptionalValue("params")) fields.params = simdjson::minify(*params);
  return fields;
}

}  // namespace

void WriteConversationFields(JsonWriter& json, const chat::Conversation& c) {
  json.Field("id", c.id).Field("title", c.title).Field("model", c.model).Key("system_prompt");
  if (c.system_prompt)
    json.String(*c.system_prompt);
  else
    json.Null();
  // Stored as the text of a JSON object the service validated.
  json.Key("params").Raw(c.params.empty() ? std::string_view("{}") : std::string_view(c.params));
  json.Field("pinned", c.pinned)
      .Field("archived", c.archived)
      .Field("created_at", c.created_at)
      .Field("updated_at", c.updated_at);
}

void WriteConversation(JsonWriter& json, const chat::Conversation& conversation) {
  json.BeginObject();
  WriteConversationFields(json, conversation);
  json.EndObject();
}

Task<http::Response> ConversationsApi::Create(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto fields = ReadFields(*body);
  if (!fields) co_return ErrorResponse(fields.error());
  chat::NewConversation conversation;
  conversation.title = fields->title.value_or("");
  conversation.model = fields->model.value_or("");
  conversation.system_prompt = std::move(fields->system_prompt);
  if (fields->params) conversation.params = std::move(*fields->params);
  auto created = co_await conversations_.Create(caller.user_id, conversation);
  if (!created) co_return ErrorResponse(created.error());
  co_return ConversationResponse(201, *created);
}

Task<http::Response> ConversationsApi::List(http::Request& request, const Principal& caller) {
  auto page = ParsePageRequest(request);
  if (!page) co_return ErrorResponse(page.error());
  auto pinned = QueryBool(request, "pinned");
  if (!pinned) co_return ErrorResponse(pinned.error());
  auto archived = QueryBool(request, "archived");
  if (!archived) co_return ErrorResponse(archived.error());
  chat::ConversationFilter filter;
  filter.title_contains = request.Query("q").value_or("");
  filter.pinned = *pinned;
  filter.archived = archived->value_or(false);
  auto conversations = co_await conversations_.List(caller.user_id, filter, *page);
  if (!conversations) co_return ErrorResponse(conversations.error());
  JsonWriter data;
  data.BeginArray();
  for (const auto& conversation : conversations->items) WriteConversation(data, conversation);
  data.EndArray();
  co_return http::Response::Json(200, ListBody(data.str(), conversations->next_cursor));
}

Task<http::Response> ConversationsApi::Get(http::Request& request, const Principal& caller) {
  auto conversation = co_await conversations_.Get(caller.user_id, request.Param("id"));
  if (!conversation) co_return ErrorResponse(conversation.error());
  co_return ConversationResponse(200, *conversation);
}

Task<http::Response> ConversationsApi::Update(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto fields = ReadFields(*body);
  if (!fields) co_return ErrorResponse(fields.error());
  auto pinned = body->OptionalBool("pinned");
  if (!pinned) co_return ErrorResponse(pinned.error());
  auto archived = body->OptionalBool("archived");
  if (!archived) co_return ErrorResponse(archived.error());
  chat::ConversationChange change;
  change.title = std::move(fields->title);
  change.model = std::move(fields->model);
  if (fields->system_prompt) {
    change.system_prompt = std::move(fields->system_prompt);
  } else if (fields->clear_system_prompt) {
    change.system_prompt.emplace(std::nullopt);
  }
  change.params = std::move(fields->params);
  change.pinned = *pinned;
  change.archived = *archived;
  auto updated = co_await conversations_.Update(caller.user_id, request.Param("id"), change);
  if (!updated) co_return ErrorResponse(updated.error());
  co_return ConversationResponse(200, *updated);
}

Task<http::Response> ConversationsApi::Delete(http::Request& request, const Principal& caller) {
  auto deleted = co_await conversations_.Delete(caller.user_id, request.Param("id"));
  if (!deleted) co_return ErrorResponse(deleted.error());
  co_return http::Response::NoContent();
}

}  // namespace chatd::api
