// Conversations: a user's chats and their settings (title, model, system prompt,
// generation parameters, pinned, archived). Messages come later; deleting a conversation
// takes them with it.
//
// Every method takes the caller's user id and scopes the query by it inside store/, so
// someone else's conversation — or a malformed id — is kNotFound with the same message as
// one that does not exist. The chat module does not know how callers authenticate: the
// api layer passes Principal::user_id.
//
// Methods run on the calling I/O thread's coroutine and never block it (SQL goes through
// store::Database). Errors: kInvalidArgument with `param` naming the field ("title",
// "params.temperature", "cursor", "q", ...), kNotFound, kUnavailable (database down).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/conversations_repository.hpp"
#include "store/database.hpp"

namespace chatd::chat {

inline constexpr std::size_t kMaxTitleLength = 200;  // characters (code points)
inline constexpr std::size_t kMaxModelLength = 100;  // characters
inline constexpr std::size_t kMaxSystemPromptBytes = 32 * 1024;
inline constexpr std::size_t kMaxParamsBytes = 4 * 1024;  // far more than the 3 keys need

// The store's records are the service's types: a conversation has nothing to hide from
// its owner, so a second set of structs would only copy fields.
using Conversation = store::ConversationRecord;
using ConversationFilter = store::ConversationFilter;
using ConversationChange = store::ConversationUpdate;

struct NewConversation {
  std::string title;                         // may be empty
  std::string model;                         // empty: the server's default model
  std::optional<std::string> system_prompt;  // nullopt: none
  std::string params = "{}";                 // JSON object text, see CheckGenerationParams
};

/// Generation parameters are a JSON object with at most these keys: temperature (a
/// number, 0..2), top_p (0..1), max_tokens (an integer, 1..1,000,000). kInvalidArgument
/// with param "params" (not an object) or "params.<key>" (unknown key, bad value).
Expected<void> CheckGenerationParams(std::string_view json);

/// The rules of Create: title, model and system_prompt lengths, and the generation
/// parameters. kInvalidArgument naming the field.
Expected<void> CheckNewConversation(const NewConversation& request);

class ConversationService {
 public:
  ConversationService(store::Database& database, const Clock& clock) : repo_(database), clock_(clock) {}

  Task<Expected<Conversation>> Create(std::string_view user_id, const NewConversation& request);
  Task<Expected<Conversation>> Get(std::string_view user_id, std::string_view id);
  /// Newest-updated first. The filter's title_contains is at most kMaxTitleLength
  /// characters (param "q"); a cursor that is not ours is param "cursor".
  Task<Expected<Page<Conversation>>> List(std::string_view user_id, const ConversationFilter& filter,
                                          const PageRequest& page);
  /// Applies the fields present in `change` (validated like Create's) and bumps updated_at.
  Task<Expected<Conversation>> Update(std::string_view user_id, std::string_view id, const ConversationChange& change);
  /// Gives an untitled conversation `title` (trimmed to kMaxTitleLength); false when it
  /// has a title by now — the user's own always wins.
  Task<Expected<bool>> SetTitleIfUntitled(std::string_view user_id, std::string_view id, std::string_view title);
  /// Deletes the conversation and its messages.
  Task<Expected<void>> Delete(std::string_view user_id, std::string_view id);

 private:
  store::ConversationsRepository repo_;
  const Clock& clock_;
};

}  // namespace chatd::chat
