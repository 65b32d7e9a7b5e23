// HTTP adapters for conversations: parse the request, call ConversationService with the
// caller's user id, write the response. No SQL and no business rules here.
#pragma once

#include "accounts/principal.hpp"
#include "chat/conversation_service.hpp"
#include "core/json.hpp"
#include "http/message.hpp"

namespace chatd::api {

/// The conversation shape of docs/api.md; the Fields form writes the members only, for
/// objects that add their own (an export's current_leaf_id).
void WriteConversation(JsonWriter& json, const chat::Conversation& conversation);
void WriteConversationFields(JsonWriter& json, const chat::Conversation& conversation);

class ConversationsApi {
 public:
  explicit ConversationsApi(chat::ConversationService& conversations) : conversations_(conversations) {}

  Task<http::Response> Create(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> List(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> Get(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> Update(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> Delete(http::Request& request, const accounts::Principal& caller);

 private:
  chat::ConversationService& conversations_;
};

}  // namespace chatd::api
