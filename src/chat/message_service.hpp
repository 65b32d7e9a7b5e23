// Messages as a tree. Each message has a parent (a root has none); the conversation
// remembers its current leaf, and the active branch is the path root→leaf. Editing a user
// message or regenerating an answer is adding a message under a parent that already has
// children: it becomes a sibling, a new branch, and the new current leaf. Switching
// branch is setting the current leaf; picking a message that is not a leaf selects the
// newest leaf under it, so a client switches by picking a sibling.
//
// The chat turn (calling a model) builds on this: AddUserMessage, StartAssistantMessage
// (status "streaming"), then FlushAssistant as the answer grows and once at the end. At
// startup, MarkInterrupted turns what a dead process left "streaming" into "incomplete".
//
// Like ConversationService: callers pass the user id, every query is scoped by it inside
// store/, and someone else's conversation or message — or an id that is not a UUID — is
// kNotFound exactly like a missing one. Methods run on the calling I/O thread's coroutine
// and never block it. Errors: kInvalidArgument with `param` ("role", "content",
// "parent_id", "status", "cursor", ...), kNotFound, kUnavailable (database down).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"
#include "store/messages_repository.hpp"

namespace chatd::chat {

inline constexpr std::size_t kMaxMessageBytes = 1024 * 1024;

using Message = store::MessageRecord;
using MessageProgress = store::MessageProgress;

/// The roles (user, assistant, system, tool) and statuses (streaming, complete,
/// incomplete, cancelled, error) a message may have.
bool IsMessageRole(std::string_view role);
bool IsMessageStatus(std::string_view status);

/// A message of the active branch, with the fork it sits in when asked for.
struct BranchMessage {
  Message message;
  std::vector<std::string> sibling_ids;  // empty unless requested; itself included
  std::size_t sibling_index = 0;         // its position in sibling_ids
};

struct NewMessage {
  std::string role;  // user | assistant | system | tool
  std::string content;
  /// nullopt: under the conversation's current leaf (a root when it has none); an engaged
  /// nullopt: a new root (editing the first message); a value: under that message.
  std::optional<std::optional<std::string>> parent_id;
  std::string status = "complete";
  std::optional<std::string> model;
};

class MessageService {
 public:
  MessageService(store::Database& database, const Clock& clock) : db_(database), clock_(clock) {}

  /// Adds a message and makes it the current leaf, in one transaction.
  Task<Expected<Message>> Add(std::string_view user_id, std::string_view conversation_id, const NewMessage& request);
  /// A complete user message; `parent_id` as in NewMessage.
  Task<Expected<Message>> AddUserMessage(std::string_view user_id, std::string_view conversation_id,
                                         std::string content,
                                         std::optional<std::optional<std::string>> parent_id = std::nullopt);
  /// An empty assistant message with status "streaming" under `parent_id` (regenerating
  /// is starting another under the same parent); it becomes the current leaf.
  Task<Expected<Message>> StartAssistantMessage(std::string_view user_id, std::string_view conversation_id,
                                                std::string_view parent_id, std::optional<std::string> model);
  /// A new message, not stored yet: a fresh id and the current time (for StartTurn).
  Message Draft(std::string_view conversation_id, std::string role, std::string content,
                std::optional<std::string> parent_id, std::string status, std::optional<std::string> model) const;
  /// A turn's messages in one transaction: the user's `question` (unless it is stored
  /// already: a regenerate) and the empty `answer` (status "streaming") under it, which
  /// becomes the current leaf. Ids, parents and times are the caller's (ChatService picks
  /// them before the call, so the model can be called while this runs). kNotFound
  /// (param "parent_id") when the question's parent is not in the conversation.
  Task<Expected<void>> StartTurn(std::string_view user_id, std::string_view conversation_id,
                                 const std::optional<Message>& question, const Message& answer);
  /// The conversation's current leaf: nullopt when it has no messages; kNotFound when it
  /// is not the caller's.
  Task<Expected<std::optional<std::string>>> CurrentLeaf(std::string_view user_id, std::string_view conversation_id);
  /// Rewrites a message's content, status, usage, finish_reason and error (the growing
  /// answer, about once a second, and its final state).
  Task<Expected<void>> FlushAssistant(std::string_view user_id, std::string_view message_id,
                                      const MessageProgress& progress);

  /// Several answers' FlushAssistant in one transaction (growing answers, batched: one
  /// commit instead of one per answer). An answer that fails its checks or is gone is
  /// skipped; only a database failure fails the whole batch.
  struct AnswerState {
    std::string user_id;
    std::string message_id;
    MessageProgress progress;
  };
  /// Takes the answers: their texts move into the statement, not copied.
  Task<Expected<void>> FlushAssistants(std::vector<AnswerState> answers);

  /// The active branch, oldest first, paginated; siblings filled in when asked for. A
  /// conversation without messages has an empty branch.
  Task<Expected<Page<BranchMessage>>> GetBranch(std::string_view user_id, std::string_view conversation_id,
                                                const PageRequest& page, bool include_siblings);
  /// The path root→`leaf_id` (any message, not only a leaf), oldest first, paginated:
  /// the history a turn answering `leaf_id` sees.
  Task<Expected<Page<Message>>> GetPath(std::string_view user_id, std::string_view conversation_id,
                                        std::string_view leaf_id, const PageRequest& page);
  /// Makes the newest leaf under `message_id` (itself when it is a leaf) the current leaf
  /// and returns its id.
  Task<Expected<std::string>> SwitchLeaf(std::string_view user_id, std::string_view conversation_id,
                                         std::string_view message_id);
  Task<Expected<Message>> Get(std::string_view user_id, std::string_view conversation_id,
                              std::string_view message_id);

  /// Startup, after migrations: every "streaming" message (of any user) becomes
  /// "incomplete". Returns how many.
  Task<Expected<std::int64_t>> MarkInterrupted();

 private:
  store::Database& db_;
  const Clock& clock_;
};

}  // namespace chatd::chat
