// HTTP adapters for export and import (chat::ConversationArchive): a conversation as a
// JSON document with every branch, or its active branch as Markdown, and a JSON export
// turned back into a new conversation of the caller.
#pragma once

#include "accounts/principal.hpp"
#include "chat/conversation_archive.hpp"
#include "http/message.hpp"

namespace chatd::api {

class ArchiveApi {
 public:
  explicit ArchiveApi(chat::ConversationArchive& archive) : archive_(archive) {}

  /// GET /conversations/{id}/export?format=json|markdown → an attachment.
  Task<http::Response> Export(http::Request& request, const accounts::Principal& caller);
  /// POST /conversations/import {export document} → 201 the new conversation.
  Task<http::Response> Import(http::Request& request, const accounts::Principal& caller);

 private:
  chat::ConversationArchive& archive_;
};

}  // namespace chatd::api
