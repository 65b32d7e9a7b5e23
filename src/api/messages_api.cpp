#include "api/messages_api.hpp"

#include <string>

#include "api/guard.hpp"
#include "api/json_fields.hpp"
#include "api/pagination.hpp"
#include "http/json_body.hpp"

namespace chatd::api {

using accounts::Principal;

namespace {

// The fields of a message object, between BeginObject and EndObject.
void WriteMessageFields(JsonWriter& json, const chat::Message& m) {
  json.Field("id", m.id).Field("conversation_id", m.conversation_id);
  json.NullableField("parent_id", m.parent_id);
  json.Field("role", m.role).Field("content", m.content).Field("status", m.status);
  json.NullableField("model", m.model);
  json.Key("usage")
      .BeginObject()
      .Field("prompt_tokens", m.prompt_tokens)
      .Field("completion_tokens", m.completion_tokens)
      .EndObject();
  json.NullableField("finish_reason", m.finish_reason);
  json.NullableField("error", m.error);
  json.Field("created_at", m.created_at).Field("updated_at", m.updated_at);
}

// `include` is a comma-separated list; "siblings" is the only item so far.
Expected<bool> IncludeSiblings(const http::Request& request) {
  const auto include = request.Query("include");
  if (!include) return false;
  bool siblings = false;
  std::string_view rest(*include);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    if (item == "siblings") {
      siblings = true;
    } else if (!item.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "include may only list: siblings", "include");
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return siblings;
}

// {["current_leaf_id": ...,] "data": [...], "next_cursor": ...}
std::string BranchBody(const Page<chat::BranchMessage>& page, bool with_siblings,
                       const std::optional<std::string>& current_leaf_id = std::nullopt) {
  JsonWriter json;
  json.BeginObject();
  if (current_leaf_id) json.Field("current_leaf_id", *current_leaf_id);
  json.Key("data").BeginArray();
  for (const auto& item : page.items) {
    json.BeginObject();
    WriteMessageFields(json, item.message);
    if (with_siblings) {
      json.Key("siblings").BeginObject().Key("ids").BeginArray();
      for (const auto& id : item.sibling_ids) json.String(id);
      json.EndArray().Field("index", static_cast<std::int64_t>(item.sibling_index)).EndObject();
    }
    json.EndObject();
  }
  json.EndArray().Key("next_cursor");
  if (page.next_cursor.empty())
    json.Null();
  else
    json.String(page.next_cursor);
  json.EndObject();
  return std::move(json).str();
}

}  // namespace

void WriteMessage(JsonWriter& json, const chat::Message& message) {
  json.BeginObject();
  WriteMessageFields(json, message);
  json.EndObject();
}

Task<http::Response> MessagesApi::ListBranch(http::Request& request, const Principal& caller) {
  auto page = ParsePageRequest(request);
  if (!page) co_return ErrorResponse(page.error());
  auto siblings = IncludeSiblings(request);
  if (!siblings) co_return ErrorResponse(siblings.error());
  const std::string conversation_id(request.Param("id"));
  auto branch = co_await messages_.GetBranch(caller.user_id, conversation_id, *page, *siblings);
  if (!branch) co_return ErrorResponse(branch.error());
  co_return http::Response::Json(200, BranchBody(*branch, *siblings));
}

Task<http::Response> MessagesApi::SwitchLeaf(http::Request& request, const Principal& caller) {
  auto page = ParsePageRequest(request);
  if (!page) co_return ErrorResponse(page.error());
  if (!page->cursor.empty()) {
    co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "the answer is the first page: no cursor", "cursor"});
  }
  auto siblings = IncludeSiblings(request);
  if (!siblings) co_return ErrorResponse(siblings.error());
  auto body = http::ParseJsonBody(request, http::ThreadJsonParser());
  if (!body) co_return ErrorResponse(body.error());
  auto object = JsonObject::From(*body);
  if (!object) co_return ErrorResponse(object.error());
  auto message_field = object->RequiredString("message_id");
  if (!message_field) co_return ErrorResponse(message_field.error());
  // Copied before any co_await: the view points into the thread's parser.
  const std::string message_id(*message_field);
  const std::string conversation_id(request.Param("id"));

  auto leaf = co_await messages_.SwitchLeaf(caller.user_id, conversation_id, message_id);
  if (!leaf) co_return ErrorResponse(leaf.error());
  auto branch = co_await messages_.GetBranch(caller.user_id, conversation_id, *page, *siblings);
  if (!branch) co_return ErrorResponse(branch.error());
  co_return http::Response::Json(200, BranchBody(*branch, *siblings, *leaf));
}

}  // namespace chatd::api
