// HTTP adapters for conversations: parse the request, call ConversationService with the
// caller's user id, write the response. No SQL and no business rules here.
#pragma once

#include "accounts/principal.hpp"
#include "chat/conversation_service.hpp"
#include "http/message.hpp"

namespace chatd::api {

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
