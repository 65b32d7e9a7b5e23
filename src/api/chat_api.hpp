// HTTP adapters for the chat turn and the model list. A streamed turn answers as
// Server-Sent Events; `"stream": false` answers the finished message as JSON.
#pragma once

#include "accounts/principal.hpp"
#include "chat/chat_service.hpp"
#include "chat/generations.hpp"
#include "chat/message_service.hpp"
#include "http/message.hpp"
#include "llm/model_registry.hpp"

namespace chatd::api {

class ChatApi {
 public:
  ChatApi(chat::ChatService& chat, chat::MessageService& messages, chat::Generations& generations,
          const llm::ModelRegistry& models)
      : chat_(chat), messages_(messages), generations_(generations), models_(models) {}

  /// POST /conversations/{id}/messages {content, parent_id?, model?, temperature?,
  /// max_tokens?, stream?, on_disconnect?}
  Task<http::Response> SendMessage(http::Request& request, const accounts::Principal& caller);
  /// POST /conversations/{id}/messages/{mid}/cancel: stops a generation of the caller's.
  Task<http::Response> Cancel(http::Request& request, const accounts::Principal& caller);
  /// GET /models: the chat models a user may pick.
  Task<http::Response> ListModels(http::Request& request, const accounts::Principal& caller);

 private:
  chat::ChatService& chat_;
  chat::MessageService& messages_;
  chat::Generations& generations_;
  const llm::ModelRegistry& models_;
};

}  // namespace chatd::api
