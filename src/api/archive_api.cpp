#include "api/archive_api.hpp"

#include <string>
#include <utility>

#include <fmt/format.h>
#include <simdjson.h>

#include "api/conversations_api.hpp"
#include "api/guard.hpp"
#include "api/json_fields.hpp"
#include "api/messages_api.hpp"
#include "core/json.hpp"
#include "http/json_body.hpp"

namespace chatd::api {

using accounts::Principal;

namespace {

// What names the document, so an import can tell it from any JSON.
constexpr std::string_view kFormat = "chatd.conversation";
constexpr std::int64_t kVersion = 1;

std::string ExportJson(const chat::ConversationExport& document) {
  JsonWriter json;
  json.BeginObject().Field("format", kFormat).Field("version", kVersion).Key("conversation").BeginObject();
  WriteConversationFields(json, document.conversation);
  json.Key("current_leaf_id");
  if (document.current_leaf_id)
    json.String(*document.current_leaf_id);
  else
    json.Null();
  json.EndObject().Key("messages").BeginArray();
  for (const auto& message : document.messages) WriteMessage(json, message);
  json.EndArray().EndObject();
  return std::move(json).str();
}

Unexpected Invalid(std::string message, std::string param) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(param));
}

// Copies an optional string field (absent or null: nothing).
Expected<void> Copy(const JsonObject& object, std::string_view key, std::optional<std::string>& out) {
  auto value = object.OptionalString(key);
  if (!value) return Unexpected{std::move(value).error()};
  if (*value) out = std::string(**value);
  return {};
}

Expected<void> CopyRequired(const JsonObject& object, std::string_view key, std::string& out) {
  auto value = object.RequiredString(key);
  if (!value) return Unexpected{std::move(value).error()};
  out = std::string(*value);
  return {};
}

Expected<chat::ImportedMessage> ReadMessage(simdjson::dom::element element, std::size_t index) {
  auto object = JsonObject::From(element, fmt::format("messages[{}]", index));
  if (!object) return Unexpected{std::move(object).error()};
  chat::ImportedMessage m;
  std::optional<std::string> status;
  if (auto ok = CopyRequired(*object, "id", m.id); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = Copy(*object, "parent_id", m.parent_id); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = CopyRequired(*object, "role", m.role); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = CopyRequired(*object, "content", m.content); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = Copy(*object, "status", status); !ok) return Unexpected{std::move(ok).error()};
  if (status) m.status = std::move(*status);
  if (auto ok = Copy(*object, "model", m.model); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = Copy(*object, "finish_reason", m.finish_reason); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = Copy(*object, "error", m.error); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = Copy(*object, "created_at", m.created_at); !ok) return Unexpected{std::move(ok).error()};
  auto usage = object->OptionalObject("usage");
  if (!usage) return Unexpected{std::move(usage).error()};
  if (*usage) {
    auto prompt = (*usage)->OptionalInt("prompt_tokens");
    if (!prompt) return Unexpected{std::move(prompt).error()};
    auto completion = (*usage)->OptionalInt("completion_tokens");
    if (!completion) return Unexpected{std::move(completion).error()};
    m.prompt_tokens = prompt->value_or(0);
    m.completion_tokens = completion->value_or(0);
  }
  return m;
}

// The document's fields; the rules (sizes, the tree) are the archive's.
Expected<chat::ConversationImport> ReadImport(const JsonObject& body) {
  auto format = body.OptionalString("format");
  if (!format) return Unexpected{std::move(format).error()};
  if (*format && **format != kFormat) return Invalid(fmt::format("format must be \"{}\"", kFormat), "format");
  auto version = body.OptionalInt("version");
  if (!version) return Unexpected{std::move(version).error()};
  if (*version && **version != kVersion) return Invalid(fmt::format("version must be {}", kVersion), "version");

  chat::ConversationImport document;
  auto conversation = body.OptionalObject("conversation");
  if (!conversation) return Unexpected{std::move(conversation).error()};
  if (!*conversation) return Invalid("conversation is required", "conversation");
  const JsonObject& c = **conversation;
  std::optional<std::string> title;
  std::optional<std::string> model;
  if (auto ok = Copy(c, "title", title); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = Copy(c, "model", model); !ok) return Unexpected{std::move(ok).error()};
  if (auto ok = Copy(c, "system_prompt", document.conversation.system_prompt); !ok) {
    return Unexpected{std::move(ok).error()};
  }
  if (auto ok = Copy(c, "current_leaf_id", document.current_leaf_id); !ok) return Unexpected{std::move(ok).error()};
  document.conversation.title = title.value_or("");
  document.conversation.model = model.value_or("");
  if (auto params = c.OptionalValue("params")) document.conversation.params = simdjson::minify(*params);
  auto pinned = c.OptionalBool("pinned");
  if (!pinned) return Unexpected{std::move(pinned).error()};
  auto archived = c.OptionalBool("archived");
  if (!archived) return Unexpected{std::move(archived).error()};
  document.pinned = pinned->value_or(false);
  document.archived = archived->value_or(false);

  const auto messages = body.OptionalValue("messages");
  if (!messages) return Invalid("messages is required", "messages");
  simdjson::dom::array array;
  if (messages->get(array) != simdjson::SUCCESS) return Invalid("messages must be an array", "messages");
  if (array.size() > chat::kMaxArchiveMessages) {
    return Invalid(fmt::format("messages may hold at most {} messages", chat::kMaxArchiveMessages), "messages");
  }
  document.messages.reserve(array.size());
  std::size_t index = 0;
  for (const simdjson::dom::element item : array) {
    auto message = ReadMessage(item, index++);
    if (!message) return Unexpected{std::move(message).error()};
    document.messages.push_back(std::move(*message));
  }
  return document;
}

}  // namespace

Task<http::Response> ArchiveApi::Export(http::Request& request, const Principal& caller) {
  const std::string format = request.Query("format").value_or("json");
  if (format != "json" && format != "markdown") {
    co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "format must be json or markdown", "format"});
  }
  const std::string conversation_id(request.Param("id"));
  auto document = co_await archive_.Export(caller.user_id, conversation_id);
  if (!document) co_return ErrorResponse(document.error());
  const bool json = format == "json";
  http::Response response = json ? http::Response::Json(200, ExportJson(*document))
                                 : http::Response::Text(200, chat::RenderMarkdown(*document),
                                                        "text/markdown; charset=utf-8");
  const std::string file = chat::ExportFileName(document->conversation, json ? "json" : "md");
  response.SetHeader("Content-Disposition", fmt::format("attachment; filename=\"{}\"", file));
  co_return response;
}

Task<http::Response> ArchiveApi::Import(http::Request& request, const Principal& caller) {
  // Everything is copied out of the thread's parser before the first co_await.
  auto body = http::ParseJsonBody(request, http::ThreadJsonParser());
  if (!body) co_return ErrorResponse(body.error());
  auto object = JsonObject::From(*body);
  if (!object) co_return ErrorResponse(object.error());
  auto document = ReadImport(*object);
  if (!document) co_return ErrorResponse(document.error());
  auto created = co_await archive_.Import(caller.user_id, *document);
  if (!created) co_return ErrorResponse(created.error());
  JsonWriter json;
  WriteConversation(json, *created);
  co_return http::Response::Json(201, std::move(json).str());
}

}  // namespace chatd::api
