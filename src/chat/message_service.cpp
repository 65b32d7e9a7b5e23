#include "chat/message_service.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <utility>

#include <fmt/format.h>

#include "chat/conversation_service.hpp"
#include "core/ids.hpp"
#include "core/time.hpp"

namespace chatd::chat {

namespace {

constexpr std::array<std::string_view, 4> kRoles = {"user", "assistant", "system", "tool"};
constexpr std::array<std::string_view, 5> kStatuses = {"streaming", "complete", "incomplete", "cancelled", "error"};

Unexpected ConversationNotFound() { return MakeError(ErrorCode::kNotFound, "conversation not found"); }
Unexpected MessageNotFound(std::string param = {}) {
  return MakeError(ErrorCode::kNotFound, "message not found", std::move(param));
}

Unexpected Invalid(std::string message, std::string param) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(param));
}

template <std::size_t N>
bool OneOf(const std::array<std::string_view, N>& allowed, std::string_view value) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

Expected<void> CheckContent(std::string_view content) {
  if (content.size() > kMaxMessageBytes) {
    return Invalid(fmt::format("content must be at most {} bytes", kMaxMessageBytes), "content");
  }
  return {};
}

Expected<void> CheckStatus(std::string_view status) {
  if (!OneOf(kStatuses, status)) {
    return Invalid("status must be one of streaming, complete, incomplete, cancelled, error", "status");
  }
  return {};
}

Expected<void> CheckNewMessage(const NewMessage& request) {
  if (!OneOf(kRoles, request.role)) return Invalid("role must be one of user, assistant, system, tool", "role");
  if (auto ok = CheckContent(request.content); !ok) return ok;
  if (auto ok = CheckStatus(request.status); !ok) return ok;
  if (request.model && request.model->size() > kMaxModelLength) {
    return Invalid(fmt::format("model must be at most {} characters", kMaxModelLength), "model");
  }
  return {};
}

// Why an insert under `conversation_id` changed nothing: either the conversation is not
// the caller's, or the parent is not in it.
Task<Expected<void>> NotInserted(store::MessagesRepository& repo, std::string_view user_id,
                                 std::string_view conversation_id) {
  auto leaf = co_await repo.CurrentLeaf(user_id, conversation_id);
  if (!leaf) co_return Unexpected{std::move(leaf).error()};
  if (!leaf->has_value()) co_return ConversationNotFound();
  co_return MessageNotFound("parent_id");
}

// Inserts `messages` in order (null entries skipped), each under its parent, and makes the
// last one the current leaf; the caller's transaction commits.
Task<Expected<void>> InsertAsLeaf(store::MessagesRepository& repo, std::string_view user_id,
                                  std::string_view conversation_id, std::span<const Message* const> messages) {
  const Message* last = nullptr;
  for (const Message* message : messages) {
    if (message == nullptr) continue;
    auto inserted = co_await repo.Insert(user_id, *message);
    if (!inserted) co_return Unexpected{std::move(inserted).error()};
    if (!*inserted) co_return co_await NotInserted(repo, user_id, conversation_id);
    last = message;
  }
  if (last == nullptr) co_return Expected<void>{};
  auto moved = co_await repo.SetCurrentLeaf(user_id, conversation_id, last->id, last->created_at);
  if (!moved) co_return Unexpected{std::move(moved).error()};
  co_return Expected<void>{};
}

}  // namespace

bool IsMessageRole(std::string_view role) { return OneOf(kRoles, role); }
bool IsMessageStatus(std::string_view status) { return OneOf(kStatuses, status); }

Task<Expected<Message>> MessageService::Add(std::string_view user_id, std::string_view conversation_id,
                                            const NewMessage& request) {
  if (auto ok = CheckNewMessage(request); !ok) co_return Unexpected{std::move(ok).error()};
  if (!LooksLikeUuid(conversation_id)) co_return ConversationNotFound();
  if (request.parent_id && *request.parent_id && !LooksLikeUuid(**request.parent_id)) {
    co_return MessageNotFound("parent_id");
  }

  // Insert and move the leaf together: a reader never sees a leaf that is not the newest
  // message added, and two concurrent adds under the same default leaf become siblings.
  auto transaction = co_await db_.Begin();
  if (!transaction) co_return Unexpected{std::move(transaction).error()};
  store::MessagesRepository repo(**transaction);

  Message message = Draft(conversation_id, request.role, request.content, std::nullopt, request.status, request.model);
  if (request.parent_id) {
    message.parent_id = *request.parent_id;
  } else {
    auto leaf = co_await repo.CurrentLeaf(user_id, conversation_id);
    if (!leaf) co_return Unexpected{std::move(leaf).error()};
    if (!leaf->has_value()) co_return ConversationNotFound();
    message.parent_id = **leaf;
  }

  const std::array<const Message*, 1> added{&message};
  auto stored = co_await InsertAsLeaf(repo, user_id, conversation_id, added);
  if (!stored) co_return Unexpected{std::move(stored).error()};
  auto committed = co_await (*transaction)->Commit();
  if (!committed) co_return Unexpected{std::move(committed).error()};
  co_return message;
}

Task<Expected<Message>> MessageService::AddUserMessage(std::string_view user_id, std::string_view conversation_id,
                                                       std::string content,
                                                       std::optional<std::optional<std::string>> parent_id) {
  NewMessage request;
  request.role = "user";
  request.content = std::move(content);
  request.parent_id = std::move(parent_id);
  co_return co_await Add(user_id, conversation_id, request);
}

Task<Expected<Message>> MessageService::StartAssistantMessage(std::string_view user_id,
                                                              std::string_view conversation_id,
                                                              std::string_view parent_id,
                                                              std::optional<std::string> model) {
  NewMessage request;
  request.role = "assistant";
  request.parent_id.emplace(std::string(parent_id));
  request.status = "streaming";
  request.model = std::move(model);
  co_return co_await Add(user_id, conversation_id, request);
}

Message MessageService::Draft(std::string_view conversation_id, std::string role, std::string content,
                             std::optional<std::string> parent_id, std::string status,
                             std::optional<std::string> model) const {
  Message message;
  message.id = NewUuidV7();
  message.conversation_id = std::string(conversation_id);
  message.parent_id = std::move(parent_id);
  message.role = std::move(role);
  message.content = std::move(content);
  message.status = std::move(status);
  message.model = std::move(model);
  message.created_at = FormatRfc3339(clock_.Now());
  message.updated_at = message.created_at;
  return message;
}

Task<Expected<void>> MessageService::StartTurn(std::string_view user_id, std::string_view conversation_id,
                                               const std::optional<Message>& question, const Message& answer) {
  if (question) {
    if (auto ok = CheckContent(question->content); !ok) co_return ok;
  }
  // A named array, not a braced list in the call: g++ 12 and temporaries beside co_await.
  const std::array<const Message*, 2> added{question ? &*question : nullptr, &answer};
  auto stored = co_await store::MessagesRepository::InsertAsLeaf(db_, user_id, conversation_id, added);
  if (!stored) co_return Unexpected{std::move(stored).error()};
  if (!*stored) {
    store::MessagesRepository repo(db_);
    co_return co_await NotInserted(repo, user_id, conversation_id);
  }
  co_return Expected<void>{};
}

Task<Expected<std::optional<std::string>>> MessageService::CurrentLeaf(std::string_view user_id,
                                                                       std::string_view conversation_id) {
  if (!LooksLikeUuid(conversation_id)) co_return ConversationNotFound();
  store::MessagesRepository repo(db_);
  auto leaf = co_await repo.CurrentLeaf(user_id, conversation_id);
  if (!leaf) co_return Unexpected{std::move(leaf).error()};
  if (!leaf->has_value()) co_return ConversationNotFound();
  co_return std::move(**leaf);
}

Task<Expected<void>> MessageService::FlushAssistant(std::string_view user_id, std::string_view message_id,
                                                    const MessageProgress& progress) {
  if (auto ok = CheckContent(progress.content); !ok) co_return ok;
  if (auto ok = CheckStatus(progress.status); !ok) co_return ok;
  if (progress.prompt_tokens < 0 || progress.completion_tokens < 0) {
    co_return Invalid("token counts must not be negative", "usage");
  }
  if (!LooksLikeUuid(message_id)) co_return MessageNotFound();
  store::MessagesRepository repo(db_);
  const std::string now = FormatRfc3339(clock_.Now());
  auto updated = co_await repo.UpdateContent(user_id, message_id, progress, now);
  if (!updated) co_return Unexpected{std::move(updated).error()};
  if (!*updated) co_return MessageNotFound();
  co_return Expected<void>{};
}

Task<Expected<void>> MessageService::FlushAssistants(std::vector<AnswerState> answers) {
  std::vector<store::MessagesRepository::ContentUpdate> updates;
  updates.reserve(answers.size());
  for (AnswerState& answer : answers) {
    const MessageProgress& progress = answer.progress;
    if (!CheckContent(progress.content) || !CheckStatus(progress.status) || !LooksLikeUuid(answer.message_id)) continue;
    updates.push_back({std::move(answer.user_id), std::move(answer.message_id), std::move(answer.progress)});
  }
  if (updates.empty()) co_return Expected<void>{};
  const std::string now = FormatRfc3339(clock_.Now());
  co_return co_await store::MessagesRepository::UpdateContents(db_, std::move(updates), now);
}

Task<Expected<Page<Message>>> MessageService::GetPath(std::string_view user_id, std::string_view conversation_id,
                                                      std::string_view leaf_id, const PageRequest& page) {
  if (!LooksLikeUuid(conversation_id) || !LooksLikeUuid(leaf_id)) co_return ConversationNotFound();
  store::MessagesRepository repo(db_);
  co_return co_await repo.Branch(user_id, conversation_id, leaf_id, page);
}

Task<Expected<Page<BranchMessage>>> MessageService::GetBranch(std::string_view user_id,
                                                              std::string_view conversation_id,
                                                              const PageRequest& page, bool include_siblings) {
  if (!LooksLikeUuid(conversation_id)) co_return ConversationNotFound();
  store::MessagesRepository repo(db_);
  auto leaf = co_await repo.CurrentLeaf(user_id, conversation_id);
  if (!leaf) co_return Unexpected{std::move(leaf).error()};
  if (!leaf->has_value()) co_return ConversationNotFound();
  Page<BranchMessage> out;
  if (!**leaf) {
    // No messages yet; a cursor can only be a stale one.
    if (!page.cursor.empty()) co_return Invalid("cursor is not on the active branch", "cursor");
    co_return out;
  }
  auto branch = co_await repo.Branch(user_id, conversation_id, ***leaf, page);
  if (!branch) co_return Unexpected{std::move(branch).error()};
  out.next_cursor = std::move(branch->next_cursor);
  out.items.reserve(branch->items.size());
  for (auto& message : branch->items) out.items.push_back(BranchMessage{std::move(message), {}, 0});
  if (!include_siblings || out.items.empty()) co_return out;

  std::vector<std::string> ids;
  ids.reserve(out.items.size());
  for (const auto& item : out.items) ids.push_back(item.message.id);
  auto siblings = co_await repo.Siblings(user_id, conversation_id, ids);
  if (!siblings) co_return Unexpected{std::move(siblings).error()};
  // Siblings() answers in the order of `ids`, skipping none of ours (each is its own sibling).
  std::size_t next = 0;
  for (auto& item : out.items) {
    if (next < siblings->size() && (*siblings)[next].message_id == item.message.id) {
      item.sibling_ids = std::move((*siblings)[next].sibling_ids);
      ++next;
    } else {
      item.sibling_ids = {item.message.id};  // deleted meanwhile: alone
    }
    const auto at = std::find(item.sibling_ids.begin(), item.sibling_ids.end(), item.message.id);
    item.sibling_index = static_cast<std::size_t>(at - item.sibling_ids.begin());
  }
  co_return out;
}

Task<Expected<std::string>> MessageService::SwitchLeaf(std::string_view user_id, std::string_view conversation_id,
                                                       std::string_view message_id) {
  if (!LooksLikeUuid(conversation_id)) co_return ConversationNotFound();
  if (!LooksLikeUuid(message_id)) co_return MessageNotFound("message_id");
  store::MessagesRepository repo(db_);
  auto leaf = co_await repo.NewestLeafUnder(user_id, conversation_id, message_id);
  if (!leaf) co_return Unexpected{std::move(leaf).error()};
  if (!leaf->has_value()) {
    // Tell a missing conversation from a missing message, both 404.
    auto current = co_await repo.CurrentLeaf(user_id, conversation_id);
    if (!current) co_return Unexpected{std::move(current).error()};
    if (!current->has_value()) co_return ConversationNotFound();
    co_return MessageNotFound("message_id");
  }
  const std::string now = FormatRfc3339(clock_.Now());
  auto moved = co_await repo.SetCurrentLeaf(user_id, conversation_id, **leaf, now);
  if (!moved) co_return Unexpected{std::move(moved).error()};
  if (!*moved) co_return MessageNotFound("message_id");  // deleted meanwhile
  co_return std::move(**leaf);
}

Task<Expected<Message>> MessageService::Get(std::string_view user_id, std::string_view conversation_id,
                                            std::string_view message_id) {
  if (!LooksLikeUuid(conversation_id) || !LooksLikeUuid(message_id)) co_return MessageNotFound();
  store::MessagesRepository repo(db_);
  auto found = co_await repo.Get(user_id, conversation_id, message_id);
  if (!found) co_return Unexpected{std::move(found).error()};
  if (!found->has_value()) co_return MessageNotFound();
  co_return std::move(**found);
}

Task<Expected<std::int64_t>> MessageService::MarkInterrupted() {
  store::MessagesRepository repo(db_);
  co_return co_await repo.MarkInterruptedGenerations(FormatRfc3339(clock_.Now()));
}

}  // namespace chatd::chat
