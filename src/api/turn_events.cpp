#include "api/turn_events.hpp"

#include "core/json.hpp"

namespace chatd::api {

using chat::TurnEvent;

std::string_view EventName(TurnEvent::Type type) {
  switch (type) {
    case TurnEvent::Type::kMessageCreated: return "message.created";
    case TurnEvent::Type::kDelta: return "delta";
    case TurnEvent::Type::kCompleted: return "message.completed";
    case TurnEvent::Type::kError: return "error";
  }
  return "error";
}

std::string EventJson(const TurnEvent& event, std::string_view client_id) {
  std::string out;
  out.reserve(256);
  AppendEventJson(out, event, client_id);
  return out;
}

void AppendEventJson(std::string& out, const TurnEvent& event, std::string_view client_id) {
  JsonWriter json(std::move(out));
  json.BeginObject().Field("type", EventName(event.type));
  if (!client_id.empty()) json.Key("id").Raw(client_id).Field("event_id", static_cast<std::int64_t>(event.id));
  switch (event.type) {
    case TurnEvent::Type::kMessageCreated:
      json.Field("conversation_id", event.conversation_id)
          .Field("user_message_id", event.user_message_id)
          .Field("assistant_message_id", event.assistant_message_id);
      break;
    case TurnEvent::Type::kDelta:
      json.Field("message_id", event.assistant_message_id).Field("content", event.content);
      break;
    case TurnEvent::Type::kCompleted:
      json.Field("message_id", event.assistant_message_id).Key("usage").BeginObject();
      json.Field("prompt_tokens", event.usage.prompt_tokens)
          .Field("completion_tokens", event.usage.completion_tokens)
          .Field("total_tokens", event.usage.prompt_tokens + event.usage.completion_tokens)
          .EndObject();
      json.Field("finish_reason", event.finish_reason);
      break;
    case TurnEvent::Type::kError:
      json.Field("message_id", event.assistant_message_id).Key("error").BeginObject();
      json.Field("message", event.error.message)
          .Field("type", ErrorType(event.error.code))
          .Field("code", ErrorCodeName(event.error.code))
          .EndObject();
      break;
  }
  json.EndObject();
  out = std::move(json).str();
}

}  // namespace chatd::api
