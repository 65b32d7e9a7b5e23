// The SQL behind message trees. Plain records in, plain records out; the rules (roles,
// sizes, which parent a new message gets) are chat::MessageService's.
//
// A conversation's messages form a tree through parent_id (a root has none); the
// conversation remembers its current leaf, and the active branch is the path root→leaf.
// Paths and "newest leaf under" are walked with WITH RECURSIVE in one statement (both
// dialects), bounded by kMaxBranchDepth so a corrupted chain cannot loop.
//
// Isolation lives in the SQL, as in conversations_repository.hpp: every statement but the
// startup sweep names the owner (`conversations.user_id = $n`) itself, so another user's
// message matches nothing and the caller sees "not found".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"

namespace chatd::store {

/// Longest path the recursive walks follow (messages from root to leaf).
inline constexpr int kMaxBranchDepth = 100'000;

struct MessageRecord {
  std::string id;
  std::string conversation_id;
  std::optional<std::string> parent_id;  // nullopt: a root
  std::string role;                      // system | user | assistant | tool
  std::string content;
  std::string status = "complete";  // streaming | complete | incomplete | cancelled | error
  std::optional<std::string> model;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::optional<std::string> finish_reason;
  std::optional<std::string> error;
  std::string created_at;
  std::string updated_at;
};

/// What a growing (or finished) assistant message is rewritten with.
struct MessageProgress {
  std::string content;
  std::string status;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::optional<std::string> finish_reason;
  std::optional<std::string> error;
};

/// How much a conversation holds (to bound what is read at once).
struct ConversationSize {
  std::int64_t messages = 0;
  std::int64_t content_chars = 0;  // characters of all message contents together
};

/// The children of one parent, oldest first (created_at, id): a fork's branches.
struct SiblingSet {
  std::string message_id;                // the message asked about
  std::vector<std::string> sibling_ids;  // itself included
};

class MessagesRepository {
 public:
  /// `executor` is the database or an open transaction.
  explicit MessagesRepository(Executor& executor) : db_(executor) {}

  /// Inserts `message` if its conversation belongs to `user_id` and its parent (if any) is
  /// a message of the same conversation. False when either does not hold.
  Task<Expected<bool>> Insert(std::string_view user_id, const MessageRecord& message);
  /// Inserts `messages` in order (null entries skipped), as Insert, and makes the last one
  /// the conversation's current leaf, in one transaction (Database::ExecuteAll: on SQLite
  /// one hop to the writer, which a new chat turn does not hold while its I/O thread is
  /// busy). False, and nothing stored, when a message fails Insert's checks.
  static Task<Expected<bool>> InsertAsLeaf(Database& database, std::string_view user_id,
                                           std::string_view conversation_id,
                                           std::span<const MessageRecord* const> messages);

  /// Rewrites content, status, usage, finish_reason and error, and updated_at = `now`.
  /// False when there is no such message of this user.
  Task<Expected<bool>> UpdateContent(std::string_view user_id, std::string_view message_id,
                                     const MessageProgress& progress, std::string_view now);
  /// UpdateContent for many messages in one transaction (Database::ExecuteBatch), so a
  /// database, not a transaction. A message that is not the user's is left alone.
  struct ContentUpdate {
    std::string user_id;
    std::string message_id;
    MessageProgress progress;
  };
  /// Takes the updates: their texts move into the statement's parameters, not copied
  /// (a batch can hold thousands of growing answers).
  static Task<Expected<void>> UpdateContents(Database& database, std::vector<ContentUpdate> updates,
                                             std::string_view now);

  /// The conversation's current leaf: nullopt when there is no such conversation of this
  /// user; an engaged nullopt when it has no messages yet.
  Task<Expected<std::optional<std::optional<std::string>>>> CurrentLeaf(std::string_view user_id,
                                                                        std::string_view conversation_id);

  /// Sets current_leaf_id and bumps the conversation's updated_at. False when the
  /// conversation is not this user's or the message is not one of its messages.
  Task<Expected<bool>> SetCurrentLeaf(std::string_view user_id, std::string_view conversation_id,
                                      std::string_view message_id, std::string_view now);

  Task<Expected<std::optional<MessageRecord>>> Get(std::string_view user_id, std::string_view conversation_id,
                                                   std::string_view message_id);

  /// The path root→`leaf_id`, oldest first, `page.limit` messages at a time (20 when 0, at
  /// most 1000). The cursor names the last message of the previous page
  /// (EncodeKeysetCursor(created_at, id)); one that is not on this path is
  /// kInvalidArgument "cursor". An empty page when the leaf is not this user's.
  Task<Expected<Page<MessageRecord>>> Branch(std::string_view user_id, std::string_view conversation_id,
                                             std::string_view leaf_id, const PageRequest& page);

  /// For each of `message_ids` (messages of this user's conversation), the ids of the
  /// children of its parent — roots for a root — oldest first. Unknown ids are left out.
  Task<Expected<std::vector<SiblingSet>>> Siblings(std::string_view user_id, std::string_view conversation_id,
                                                   const std::vector<std::string>& message_ids);

  /// The leaf reached from `message_id` by following the newest child (created_at, then
  /// id) at every step; the message itself when it has no children. nullopt when it is
  /// not a message of this user's conversation.
  Task<Expected<std::optional<std::string>>> NewestLeafUnder(std::string_view user_id,
                                                             std::string_view conversation_id,
                                                             std::string_view message_id);

  /// The conversation's message count and content size; nullopt when there is no such
  /// conversation of this user.
  Task<Expected<std::optional<ConversationSize>>> Size(std::string_view user_id, std::string_view conversation_id);

  /// Every message of the conversation — all branches — oldest first (created_at, id), at
  /// most `limit` of them. Empty when the conversation is not this user's.
  Task<Expected<std::vector<MessageRecord>>> ListAll(std::string_view user_id, std::string_view conversation_id,
                                                     std::int64_t limit);

  /// Startup sweep after a crash, for every user: streaming → incomplete. Returns the count.
  Task<Expected<std::int64_t>> MarkInterruptedGenerations(std::string_view now);

 private:
  Executor& db_;
};

}  // namespace chatd::store
