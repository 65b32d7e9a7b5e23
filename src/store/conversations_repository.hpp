// The SQL behind conversations. Plain records in, plain records out; the rules (lengths,
// generation parameters, defaults) are chat::ConversationService's.
//
// Isolation lives in the SQL: every statement names `user_id = $n` itself, so another
// user's conversation matches nothing and the caller sees "not found", exactly like an id
// that does not exist — never a row fetched and filtered afterwards.
//
// Times are RFC 3339 UTC with milliseconds, written by the caller from its Clock, so
// keyset cursors ("updated_at|id", see keyset.hpp) compare exactly in both dialects.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"

namespace chatd::store {

struct ConversationRecord {
  std::string id;
  std::string user_id;
  std::string title;
  std::string model;                         // empty: the server's default model
  std::optional<std::string> system_prompt;  // nullopt: none (NULL)
  std::string params = "{}";                 // generation parameters, a JSON object's text
  bool pinned = false;
  bool archived = false;
  std::string created_at;
  std::string updated_at;
};

/// Which of a user's conversations a list shows.
struct ConversationFilter {
  std::string title_contains;  // empty: any; case-insensitive, % and _ are literal
  std::optional<bool> pinned;  // nullopt: both
  bool archived = false;       // archived ones, or the others
};

/// A partial update; each absent field stays as it is.
struct ConversationUpdate {
  std::optional<std::string> title;
  std::optional<std::string> model;
  std::optional<std::optional<std::string>> system_prompt;  // engaged nullopt: clear it
  std::optional<std::string> params;
  std::optional<bool> pinned;
  std::optional<bool> archived;
};

class ConversationsRepository {
 public:
  /// `executor` is the database or an open transaction.
  explicit ConversationsRepository(Executor& executor) : db_(executor) {}

  Task<Expected<void>> Insert(const ConversationRecord& conversation);
  /// nullopt when there is no such conversation of this user.
  Task<Expected<std::optional<ConversationRecord>>> Find(std::string_view user_id, std::string_view id);
  /// Newest-updated first (updated_at DESC, id DESC), keyset-paginated.
  Task<Expected<Page<ConversationRecord>>> List(std::string_view user_id, const ConversationFilter& filter,
                                                const PageRequest& page);
  /// Applies `update` and sets updated_at = `now`; nullopt when there is no such
  /// conversation of this user.
  Task<Expected<std::optional<ConversationRecord>>> Update(std::string_view user_id, std::string_view id,
                                                           const ConversationUpdate& update, std::string_view now);
  /// Sets the title of a conversation that has none (a title generated after the first
  /// exchange); false when it has one by now, or is not this user's.
  Task<Expected<bool>> SetTitleIfUntitled(std::string_view user_id, std::string_view id, std::string_view title);
  /// Deletes the conversation (its messages go with it: ON DELETE CASCADE). False when
  /// there is no such conversation of this user.
  Task<Expected<bool>> Delete(std::string_view user_id, std::string_view id);

 private:
  Executor& db_;
};

}  // namespace chatd::store
