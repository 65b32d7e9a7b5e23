// HTTP adapters for message trees: the active branch of a conversation and switching it.
// Parse the request, call MessageService with the caller's user id, write the response.
// (The chat turn that creates messages over HTTP builds on WriteMessage.)
#pragma once

#include "accounts/principal.hpp"
#include "chat/message_service.hpp"
#include "core/json.hpp"
#include "http/message.hpp"

namespace chatd::api {

/// The message shape of docs/api.md ("Messages"), without `siblings`.
void WriteMessage(JsonWriter& json, const chat::Message& message);

class MessagesApi {
 public:
  explicit MessagesApi(chat::MessageService& messages) : messages_(messages) {}

  /// GET /conversations/{id}/messages?limit=&cursor=&include=siblings
  Task<http::Response> ListBranch(http::Request& request, const accounts::Principal& caller);
  /// PUT /conversations/{id}/current-leaf {"message_id"} → the new branch's first page.
  Task<http::Response> SwitchLeaf(http::Request& request, const accounts::Principal& caller);

 private:
  chat::MessageService& messages_;
};

}  // namespace chatd::api
