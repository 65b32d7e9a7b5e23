// A conversation as a document, and back: export (JSON with every message of every
// branch, or the active branch as Markdown) and import (a new conversation from an
// export, with fresh ids).
//
// An export lists the messages parents first, otherwise oldest first: the order an
// import needs. An import is checked whole before anything is stored — sizes, fields,
// and the tree: every id unique, every parent an earlier message (so there can be no
// cycle), the current leaf a leaf — and then stored in one transaction, so a bad or
// failed import leaves nothing behind. It keeps the tree's shape, the order of siblings,
// roles, contents, statuses, models, usage and timestamps; times are made strictly
// increasing along the list (a tie gains a millisecond), since siblings are ordered by
// time. An answer exported while it was being generated ("streaming") is imported as
// "incomplete", like the answers a restart finds unfinished.
//
// Like the other chat services: callers pass the user id, store/ scopes every query by
// it, and someone else's conversation is kNotFound like a missing one. Errors:
// kInvalidArgument with `param` naming what is wrong ("conversation.title",
// "messages[3].parent_id", "current_leaf_id", ...), kNotFound, kPayloadTooLarge (a
// conversation too large to export), kUnavailable (database down).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/conversation_service.hpp"
#include "chat/message_service.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "store/database.hpp"

namespace chatd::chat {

/// Bounds of one document, both ways: what an export may hold is what an import takes.
inline constexpr std::size_t kMaxArchiveMessages = 10'000;
inline constexpr std::int64_t kMaxArchiveContentChars = 16 * 1024 * 1024;
/// The largest import body (JSON); the route's body limit.
inline constexpr std::size_t kMaxImportBytes = 32 * 1024 * 1024;

struct ConversationExport {
  Conversation conversation;
  std::optional<std::string> current_leaf_id;  // nullopt: no messages
  std::vector<Message> messages;               // all of them, parents first, then oldest first
};

/// One message of an import. `id` and `parent_id` are references within the document;
/// the stored message gets a new id.
struct ImportedMessage {
  std::string id;
  std::optional<std::string> parent_id;  // nullopt: a root
  std::string role;
  std::string content;
  std::string status = "complete";
  std::optional<std::string> model;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::optional<std::string> finish_reason;
  std::optional<std::string> error;
  std::optional<std::string> created_at;  // RFC 3339; nullopt: the time of the import
};

struct ConversationImport {
  NewConversation conversation;
  bool pinned = false;
  bool archived = false;
  std::optional<std::string> current_leaf_id;  // nullopt: the last message of the list
  std::vector<ImportedMessage> messages;       // parents before their children
};

/// The active branch of an export: root → current leaf, oldest first.
std::vector<const Message*> ActiveBranch(const ConversationExport& document);

/// The active branch as Markdown: the title as a heading, then a section per message
/// ("## User", "## Assistant", ...) with its content as it is (answers are Markdown).
std::string RenderMarkdown(const ConversationExport& document);

/// A file name for the export: the title's letters, digits, '-' and '_' (others become
/// '-'), at most 60 of them, or "conversation" — then `extension`. Safe in a quoted
/// Content-Disposition parameter and on any file system.
std::string ExportFileName(const Conversation& conversation, std::string_view extension);

class ConversationArchive {
 public:
  ConversationArchive(store::Database& database, const Clock& clock) : db_(database), clock_(clock) {}

  /// The conversation and all its messages. kPayloadTooLarge past kMaxArchiveMessages
  /// messages or kMaxArchiveContentChars characters of content.
  Task<Expected<ConversationExport>> Export(std::string_view user_id, std::string_view conversation_id);

  /// Checks `document` and stores it as a new conversation of the user (created and
  /// updated now); returns it.
  Task<Expected<Conversation>> Import(std::string_view user_id, const ConversationImport& document);

 private:
  store::Database& db_;
  const Clock& clock_;
};

}  // namespace chatd::chat
