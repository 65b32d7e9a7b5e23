// HTTP adapters for the chat turn and the model list. A streamed turn answers as
// Server-Sent Events; `"stream": false` answers the finished message as JSON. A stream
// can be followed again (resume) from the event after Last-Event-ID.
#pragma once

#include "accounts/principal.hpp"
#include "api/json_fields.hpp"
#include "chat/chat_service.hpp"
#include "chat/generations.hpp"
#include "chat/message_service.hpp"
#include "http/message.hpp"
#include "core/metrics.hpp"
#include "llm/model_registry.hpp"

namespace chatd::api {

/// A turn's fields from a JSON object (the SSE request body, a WebSocket message):
/// content and parent_id (unless regenerating), model, temperature, max_tokens,
/// on_disconnect. kInvalidArgument with `param` naming the field.
Expected<chat::TurnRequest> ParseTurn(const JsonObject& body, bool regenerate);

class ChatApi {
 public:
  ChatApi(chat::ChatService& chat, chat::MessageService& messages, chat::Generations& generations,
          const llm::ModelRegistry& models, metrics::Registry& metrics)
      : chat_(chat),
        messages_(messages),
        generations_(generations),
        models_(models),
        sse_streams_(metrics.AddGauge("sse_active_streams", "Server-Sent Event streams open.").WithLabels({})) {}

  /// POST /conversations/{id}/messages {content, parent_id?, model?, temperature?,
  /// max_tokens?, stream?, on_disconnect?}
  Task<http::Response> SendMessage(http::Request& request, const accounts::Principal& caller);
  /// POST /conversations/{id}/messages/{mid}/regenerate {model?, temperature?,
  /// max_tokens?, stream?, on_disconnect?}: another answer to the same question.
  Task<http::Response> Regenerate(http::Request& request, const accounts::Principal& caller);
  /// GET /conversations/{id}/messages/{mid}/stream: the generation's events after
  /// Last-Event-ID (or ?after=), then live ones until it ends.
  Task<http::Response> Resume(http::Request& request, const accounts::Principal& caller);
  /// POST /conversations/{id}/messages/{mid}/cancel: stops a generation of the caller's.
  Task<http::Response> Cancel(http::Request& request, const accounts::Principal& caller);
  /// GET /models: the chat models a user may pick.
  Task<http::Response> ListModels(http::Request& request, const accounts::Principal& caller);

 private:
  Task<http::Response> StartTurn(http::Request& request, const accounts::Principal& caller, bool regenerate);
  Task<http::Response> AnswerWhole(const accounts::Principal& caller, const std::string& conversation_id,
                                   const chat::TurnRequest& turn);

  chat::ChatService& chat_;
  chat::MessageService& messages_;
  chat::Generations& generations_;
  const llm::ModelRegistry& models_;
  metrics::Gauge& sse_streams_;
};

}  // namespace chatd::api
