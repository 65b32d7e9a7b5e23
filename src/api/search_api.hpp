// HTTP adapter for search: GET /search?q=&limit=&cursor= over the caller's messages and
// conversation titles (chat::SearchService).
#pragma once

#include "accounts/principal.hpp"
#include "chat/search_service.hpp"
#include "http/message.hpp"

namespace chatd::api {

class SearchApi {
 public:
  explicit SearchApi(chat::SearchService& search) : search_(search) {}

  /// {"data": [hit...], "next_cursor"}; a hit is {"type": "message"|"title",
  /// "conversation_id", "conversation_title", "message_id", "role", "snippet", "score",
  /// "created_at"} (message_id and role null for a title).
  Task<http::Response> Search(http::Request& request, const accounts::Principal& caller);

 private:
  chat::SearchService& search_;
};

}  // namespace chatd::api
