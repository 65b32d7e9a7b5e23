#include "api/chat_api.hpp"

#include <cmath>

#include <fmt/format.h>

#include "api/guard.hpp"
#include "api/json_fields.hpp"
#include "api/messages_api.hpp"
#include "api/pagination.hpp"
#include "core/json.hpp"
#include "http/json_body.hpp"

namespace chatd::api {

namespace {

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

// The JSON `data:` of an event; it carries its own "type" too, for clients that read only data.
std::string EventJson(const TurnEvent& event) {
  JsonWriter json;
  json.BeginObject().Field("type", EventName(event.type));
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
  return std::move(json).str();
}

// Server-Sent Events on the request's response stream; the head goes out with the first
// event, so errors found before the turn starts are still plain JSON responses.
class SseSink final : public chat::TurnSink {
 public:
  explicit SseSink(http::ResponseStream& stream) : stream_(stream) {}

  Task<bool> Send(const TurnEvent& event) override {
    if (!begun_) {
      begun_ = true;
      http::Response head(200, {}, "text/event-stream; charset=utf-8");
      head.AddHeader("Cache-Control", "no-cache");
      head.AddHeader("X-Accel-Buffering", "no");  // nginx must not buffer the stream
      if (!co_await stream_.Begin(std::move(head))) co_return false;
    }
    co_return co_await stream_.Write(
        fmt::format("event: {}\nid: {}\ndata: {}\n\n", EventName(event.type), next_id_++, EventJson(event)));
  }

  bool begun() const { return begun_; }

 private:
  http::ResponseStream& stream_;
  std::uint64_t next_id_ = 1;
  bool begun_ = false;
};

// For `"stream": false`: nobody listens while the turn runs; the stored message is the answer.
class SilentSink final : public chat::TurnSink {
 public:
  Task<bool> Send(const TurnEvent&) override { co_return true; }
};

}  // namespace

Task<http::Response> ChatApi::SendMessage(http::Request& request, const accounts::Principal& caller) {
  auto parsed = http::ParseJsonBody(request, http::ThreadJsonParser());
  if (!parsed) co_return ErrorResponse(parsed.error());
  auto body = JsonObject::From(*parsed);
  if (!body) co_return ErrorResponse(body.error());

  chat::TurnRequest turn;
  auto content = body->RequiredString("content");
  if (!content) co_return ErrorResponse(content.error());
  turn.content = std::string(*content);
  if (body->IsNull("parent_id")) {
    turn.parent_id = std::optional<std::string>{};
  } else {
    auto parent = body->OptionalString("parent_id");
    if (!parent) co_return ErrorResponse(parent.error());
    if (*parent) turn.parent_id = std::optional<std::string>(std::string(**parent));
  }
  auto model = body->OptionalString("model");
  if (!model) co_return ErrorResponse(model.error());
  turn.model = std::string(model->value_or(""));
  if (auto value = body->OptionalValue("temperature")) {
    double temperature = 0;
    if (value->get(temperature) != simdjson::SUCCESS || !std::isfinite(temperature)) {
      co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "temperature must be a number", "temperature"});
    }
    turn.temperature = temperature;
  }
  if (auto value = body->OptionalValue("max_tokens")) {
    std::int64_t max_tokens = 0;
    if (value->get(max_tokens) != simdjson::SUCCESS) {
      co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "max_tokens must be an integer", "max_tokens"});
    }
    turn.max_tokens = max_tokens;
  }
  auto stream = body->OptionalBool("stream");
  if (!stream) co_return ErrorResponse(stream.error());
  auto on_disconnect = body->OptionalString("on_disconnect");
  if (!on_disconnect) co_return ErrorResponse(on_disconnect.error());
  if (*on_disconnect && **on_disconnect != "cancel" && **on_disconnect != "continue") {
    co_return ErrorResponse(
        Error{ErrorCode::kInvalidArgument, "on_disconnect must be \"continue\" or \"cancel\"", "on_disconnect"});
  }
  turn.cancel_on_disconnect = *on_disconnect && **on_disconnect == "cancel";
  turn.credential_id = caller.api_key_id;

  const std::string conversation_id(request.Param("id"));
  if (!stream->value_or(true)) {
    SilentSink silent;
    auto message = co_await chat_.Run(caller.user_id, conversation_id, turn, silent);
    if (!message) co_return ErrorResponse(message.error());
    JsonWriter json;
    WriteMessage(json, *message);
    co_return http::Response::Json(200, std::move(json).str());
  }

  SseSink sse(*request.stream);
  auto message = co_await chat_.Run(caller.user_id, conversation_id, turn, sse);
  if (!sse.begun()) {
    // Refused before the turn began: an ordinary error response.
    if (!message) co_return ErrorResponse(message.error());
    co_return http::Response::FromError(ErrorCode::kInternal, "the turn produced no events");
  }
  co_return http::Response{};  // the stream carried the answer
}

Task<http::Response> ChatApi::Cancel(http::Request& request, const accounts::Principal& caller) {
  const std::string_view message_id = request.Param("mid");
  if (generations_.Cancel(caller.user_id, message_id)) co_return http::Response(202, R"({"status":"cancelling"})", "application/json");
  // Not generating here: someone else's or missing is 404; the caller's own is 409.
  auto message = co_await messages_.Get(caller.user_id, request.Param("id"), message_id);
  if (!message) co_return ErrorResponse(message.error());
  co_return ErrorResponse(Error{ErrorCode::kConflict, "this message is not being generated"});
}

Task<http::Response> ChatApi::ListModels(http::Request&, const accounts::Principal&) {
  JsonWriter json;
  json.BeginArray();
  for (const auto& model : models_.List()) {
    if (model.embeddings) continue;
    json.BeginObject()
        .Field("id", model.id)
        .Field("object", "model")
        .Field("owned_by", model.owned_by)
        .Field("context_window", model.context_window)
        .Field("default", model.id == models_.default_model())
        .EndObject();
  }
  json.EndArray();
  co_return http::Response::Json(200, ListBody(json.str(), ""));
}

}  // namespace chatd::api
