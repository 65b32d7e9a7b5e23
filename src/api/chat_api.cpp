#include "api/chat_api.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "api/guard.hpp"
#include "api/json_fields.hpp"
#include "api/messages_api.hpp"
#include "api/pagination.hpp"
#include "api/turn_events.hpp"
#include "core/json.hpp"
#include "http/json_body.hpp"

namespace chatd::api {

namespace {

using chat::TurnEvent;

// Server-Sent Events on the request's response stream. The event's `id:` is its place in
// the generation's log, which is what a client resuming sends back as Last-Event-ID.
class SseSink final : public chat::TurnSink {
 public:
  SseSink(http::ResponseStream& stream, metrics::Gauge& active) : stream_(stream), active_(active) {}
  ~SseSink() override {
    if (begun_) active_.Dec();
  }

  Task<bool> Begin() {
    begun_ = true;
    active_.Inc();
    http::Response head(200, {}, "text/event-stream; charset=utf-8");
    head.AddHeader("Cache-Control", "no-cache");
    head.AddHeader("X-Accel-Buffering", "no");  // nginx must not buffer the stream
    co_return co_await stream_.Begin(std::move(head));
  }

  // Not a coroutine: the frame is built in a buffer the sink keeps, and the write is
  // handed back to the caller to await, one coroutine frame fewer per event.
  Task<bool> Send(const TurnEvent& event) override {
    frame_.clear();
    frame_ += "event: ";
    frame_ += EventName(event.type);
    frame_ += "\nid: ";
    frame_ += std::to_string(event.id);
    frame_ += "\ndata: ";
    AppendEventJson(frame_, event, {});
    frame_ += "\n\n";
    return stream_.Write(frame_);
  }

  Task<bool> Ping() override { co_return co_await stream_.Write(": ping\n\n"); }

  /// A message no generation here can replay (finished long ago, or on another instance):
  /// its stored state as one event, which replaces what the client has.
  Task<bool> SendSnapshot(const chat::Message& message) {
    JsonWriter json;
    json.BeginObject().Field("type", "message.snapshot");
    json.Key("message");
    WriteMessage(json, message);
    json.EndObject();
    co_return co_await stream_.Write(fmt::format("event: message.snapshot\ndata: {}\n\n", json.str()));
  }

 private:
  http::ResponseStream& stream_;
  metrics::Gauge& active_;
  bool begun_ = false;
  std::string frame_;  // the event being sent: a Write reads it until it completes
};

// For `"stream": false`: nobody listens while the turn runs; the stored message is the answer.
class SilentSink final : public chat::TurnSink {
 public:
  Task<bool> Send(const TurnEvent&) override { co_return true; }
};

// The turn fields shared by a new message and a regenerate: model, temperature,
// max_tokens, on_disconnect.
Expected<void> ReadTurnOptions(const JsonObject& body, chat::TurnRequest& turn) {
  auto model = body.OptionalString("model");
  if (!model) return Unexpected{model.error()};
  turn.model = std::string(model->value_or(""));
  if (auto value = body.OptionalValue("temperature")) {
    double temperature = 0;
    if (value->get(temperature) != simdjson::SUCCESS || !std::isfinite(temperature)) {
      return MakeError(ErrorCode::kInvalidArgument, "temperature must be a number", "temperature");
    }
    turn.temperature = temperature;
  }
  if (auto value = body.OptionalValue("max_tokens")) {
    std::int64_t max_tokens = 0;
    if (value->get(max_tokens) != simdjson::SUCCESS) {
      return MakeError(ErrorCode::kInvalidArgument, "max_tokens must be an integer", "max_tokens");
    }
    turn.max_tokens = max_tokens;
  }
  auto on_disconnect = body.OptionalString("on_disconnect");
  if (!on_disconnect) return Unexpected{on_disconnect.error()};
  if (*on_disconnect && **on_disconnect != "cancel" && **on_disconnect != "continue") {
    return MakeError(ErrorCode::kInvalidArgument, "on_disconnect must be \"continue\" or \"cancel\"", "on_disconnect");
  }
  turn.cancel_on_disconnect = *on_disconnect && **on_disconnect == "cancel";
  return {};
}

}  // namespace

Expected<chat::TurnRequest> ParseTurn(const JsonObject& body, bool regenerate) {
  chat::TurnRequest turn;
  if (!regenerate) {
    auto content = body.RequiredString("content");
    if (!content) return Unexpected{content.error()};
    turn.content = std::string(*content);
    if (body.IsNull("parent_id")) {
      turn.parent_id = std::optional<std::string>{};
    } else {
      auto parent = body.OptionalString("parent_id");
      if (!parent) return Unexpected{parent.error()};
      if (*parent) turn.parent_id = std::optional<std::string>(std::string(**parent));
    }
  }
  if (auto options = ReadTurnOptions(body, turn); !options) return Unexpected{options.error()};
  return turn;
}

namespace {

struct AskedTurn {
  chat::TurnRequest turn;
  bool stream = true;
};

// Not in StartTurn's coroutine: the parsed document would stay in its frame — and so in
// every open stream's memory — for the whole answer.
Expected<AskedTurn> ReadTurnRequest(http::Request& request, const accounts::Principal& caller, bool regenerate) {
  // A regenerate may come without a body: all its fields are optional.
  auto parsed = regenerate && request.body.empty() ? ParseJson(http::ThreadJsonParser(), "{}")
                                                   : http::ParseJsonBody(request, http::ThreadJsonParser());
  if (!parsed) return Unexpected{parsed.error()};
  auto body = JsonObject::From(*parsed);
  if (!body) return Unexpected{body.error()};
  auto turn = ParseTurn(*body, regenerate);
  if (!turn) return Unexpected{turn.error()};
  if (regenerate) turn->regenerate = std::string(request.Param("mid"));
  turn->credential_id = caller.api_key_id;
  auto stream = body->OptionalBool("stream");
  if (!stream) return Unexpected{stream.error()};
  return AskedTurn{std::move(*turn), stream->value_or(true)};
}

}  // namespace

Task<http::Response> ChatApi::StartTurn(http::Request& request, const accounts::Principal& caller, bool regenerate) {
  auto asked = ReadTurnRequest(request, caller, regenerate);
  if (!asked) co_return ErrorResponse(asked.error());
  const std::string conversation_id(request.Param("id"));
  if (!asked->stream) co_return co_await AnswerWhole(caller, conversation_id, asked->turn);

  // Refusals before the turn starts are ordinary error responses; then the stream begins.
  auto generation = co_await chat_.Start(caller.user_id, conversation_id, asked->turn);
  if (!generation) co_return ErrorResponse(generation.error());
  SseSink sse(*request.stream, sse_streams_);
  if (co_await sse.Begin()) co_await (*generation)->Follow(0, sse, chat_.config().ping_interval);
  co_return http::Response{};  // the stream carried the answer
}

// `stream: false`: the finished message as JSON. A coroutine of its own, so that its
// locals do not enlarge the frame every streamed turn keeps.
Task<http::Response> ChatApi::AnswerWhole(const accounts::Principal& caller, const std::string& conversation_id,
                                          const chat::TurnRequest& turn) {
  SilentSink silent;
  auto message = co_await chat_.Run(caller.user_id, conversation_id, turn, silent);
  if (!message) co_return ErrorResponse(message.error());
  JsonWriter json;
  WriteMessage(json, *message);
  co_return http::Response::Json(200, std::move(json).str());
}

Task<http::Response> ChatApi::SendMessage(http::Request& request, const accounts::Principal& caller) {
  co_return co_await StartTurn(request, caller, false);
}

Task<http::Response> ChatApi::Regenerate(http::Request& request, const accounts::Principal& caller) {
  co_return co_await StartTurn(request, caller, true);
}

Task<http::Response> ChatApi::Resume(http::Request& request, const accounts::Principal& caller) {
  // Last-Event-ID (sent by EventSource on reconnect), or ?after= for clients that cannot
  // set headers; absent: from the start.
  std::string after_text(request.Header("Last-Event-ID"));
  if (after_text.empty()) after_text = request.Query("after").value_or("");
  std::uint64_t after = 0;
  if (!after_text.empty()) {
    const auto [end, ec] = std::from_chars(after_text.data(), after_text.data() + after_text.size(), after);
    if (ec != std::errc{} || end != after_text.data() + after_text.size()) {
      co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "Last-Event-ID must be an event id (an integer)", "Last-Event-ID"});
    }
  }
  const std::string_view conversation_id = request.Param("id");
  const std::string_view message_id = request.Param("mid");
  auto generation = generations_.Find(caller.user_id, message_id);
  if (generation && generation->info().conversation_id != conversation_id) generation = nullptr;
  std::optional<chat::Message> stored;
  if (!generation) {
    // Not generating here (any more): the stored message, if it is the caller's.
    auto message = co_await messages_.Get(caller.user_id, conversation_id, message_id);
    if (!message) co_return ErrorResponse(message.error());
    if (message->role != "assistant") {
      co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "only an answer has a stream"});
    }
    stored = std::move(*message);
  }
  SseSink sse(*request.stream, sse_streams_);
  if (!co_await sse.Begin()) co_return http::Response{};
  if (generation) {
    co_await generation->Follow(after, sse, chat_.config().ping_interval);
  } else {
    co_await sse.SendSnapshot(*stored);
  }
  co_return http::Response{};
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
