#include "chat/conversation_archive.hpp"

#include <chrono>
#include <functional>
#include <queue>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "core/utf8.hpp"
#include "core/ids.hpp"
#include "core/time.hpp"
#include "store/conversations_repository.hpp"
#include "store/messages_repository.hpp"

namespace chatd::chat {

namespace {

constexpr std::size_t kMaxImportedIdLength = 100;
constexpr std::size_t kMaxFinishReasonLength = 100;
constexpr std::size_t kMaxErrorBytes = 16 * 1024;
constexpr std::int64_t kMaxTokenCount = 1'000'000'000;
constexpr std::size_t kMaxFileNameStem = 60;

Unexpected NotFound() { return MakeError(ErrorCode::kNotFound, "conversation not found"); }

Unexpected Invalid(std::string message, std::string param) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(param));
}

// The messages (sorted oldest first) reordered so that each comes after its parent and
// otherwise stays in time order: Kahn's algorithm, taking the oldest ready message first.
// With parents older than their children (always, unless two share a millisecond) this
// is the time order itself. A message whose parent is not in the list counts as a root.
std::vector<Message> ParentsFirst(std::vector<Message> sorted) {
  std::unordered_map<std::string_view, std::size_t> index;
  for (std::size_t i = 0; i < sorted.size(); ++i) index.emplace(sorted[i].id, i);
  std::vector<std::vector<std::size_t>> children(sorted.size());
  std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const auto parent = sorted[i].parent_id ? index.find(*sorted[i].parent_id) : index.end();
    if (parent == index.end()) {
      ready.push(i);
    } else {
      children[parent->second].push_back(i);
    }
  }
  std::vector<Message> out;
  out.reserve(sorted.size());
  while (!ready.empty()) {
    const std::size_t next = ready.top();
    ready.pop();
    for (const std::size_t child : children[next]) ready.push(child);
    out.push_back(std::move(sorted[next]));
  }
  return out;
}

std::string RoleHeading(const Message& message) {
  std::string heading = message.role;
  if (!heading.empty()) heading[0] = static_cast<char>(heading[0] - 'a' + 'A');
  if (message.role == "assistant" && message.model && !message.model->empty()) {
    heading += fmt::format(" ({})", *message.model);
  }
  return heading;
}

// One line: a title may hold line breaks, a Markdown heading may not.
std::string OneLine(std::string_view text) {
  std::string out;
  for (const char c : text) out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  return out;
}

// --- import checks ----------------------------------------------------------------------

Expected<void> CheckOptionalLength(const std::optional<std::string>& text, std::size_t max, const std::string& param) {
  if (text && Utf8Length(*text) > max) return Invalid(fmt::format("{} must be at most {} characters", param, max), param);
  return {};
}

Expected<void> CheckTokens(std::int64_t count, const std::string& param) {
  if (count < 0 || count > kMaxTokenCount) {
    return Invalid(fmt::format("{} must be an integer from 0 to {}", param, kMaxTokenCount), param);
  }
  return {};
}

Expected<void> CheckMessage(const ImportedMessage& m, std::size_t i,
                            const std::unordered_set<std::string_view>& earlier) {
  const std::string at = fmt::format("messages[{}].", i);
  if (m.id.empty() || Utf8Length(m.id) > kMaxImportedIdLength) {
    return Invalid(fmt::format("{0}id must be 1 to {1} characters", at, kMaxImportedIdLength), at + "id");
  }
  if (earlier.contains(m.id)) return Invalid(fmt::format("{}id repeats an earlier message's id", at), at + "id");
  if (m.parent_id && !earlier.contains(*m.parent_id)) {
    return Invalid(fmt::format("{}parent_id must name a message listed before it", at), at + "parent_id");
  }
  if (!IsMessageRole(m.role)) {
    return Invalid(fmt::format("{}role must be one of user, assistant, system, tool", at), at + "role");
  }
  if (m.content.size() > kMaxMessageBytes) {
    return Invalid(fmt::format("{}content must be at most {} bytes", at, kMaxMessageBytes), at + "content");
  }
  if (!IsMessageStatus(m.status)) {
    return Invalid(fmt::format("{}status must be one of streaming, complete, incomplete, cancelled, error", at),
                   at + "status");
  }
  if (auto ok = CheckOptionalLength(m.model, kMaxModelLength, at + "model"); !ok) return ok;
  if (auto ok = CheckOptionalLength(m.finish_reason, kMaxFinishReasonLength, at + "finish_reason"); !ok) return ok;
  if (m.error && m.error->size() > kMaxErrorBytes) {
    return Invalid(fmt::format("{}error must be at most {} bytes", at, kMaxErrorBytes), at + "error");
  }
  if (auto ok = CheckTokens(m.prompt_tokens, at + "usage.prompt_tokens"); !ok) return ok;
  if (auto ok = CheckTokens(m.completion_tokens, at + "usage.completion_tokens"); !ok) return ok;
  if (m.created_at && !ParseRfc3339(*m.created_at)) {
    return Invalid(fmt::format("{}created_at must be an RFC 3339 time", at), at + "created_at");
  }
  return {};
}

Expected<void> CheckImport(const ConversationImport& document) {
  if (auto ok = CheckNewConversation(document.conversation); !ok) {
    Error error = std::move(ok).error();
    error.param = "conversation." + error.param;
    return Unexpected{std::move(error)};
  }
  if (document.messages.size() > kMaxArchiveMessages) {
    return Invalid(fmt::format("messages may hold at most {} messages", kMaxArchiveMessages), "messages");
  }
  std::int64_t content_chars = 0;
  std::unordered_set<std::string_view> earlier;
  std::unordered_set<std::string_view> parents;
  for (std::size_t i = 0; i < document.messages.size(); ++i) {
    const ImportedMessage& message = document.messages[i];
    if (auto ok = CheckMessage(message, i, earlier); !ok) return ok;
    earlier.insert(message.id);
    if (message.parent_id) parents.insert(*message.parent_id);
    content_chars += static_cast<std::int64_t>(Utf8Length(message.content));
  }
  if (content_chars > kMaxArchiveContentChars) {
    return Invalid(fmt::format("messages may hold at most {} characters of content", kMaxArchiveContentChars),
                   "messages");
  }
  if (document.current_leaf_id) {
    if (!earlier.contains(*document.current_leaf_id)) {
      return Invalid("current_leaf_id must name one of the messages", "current_leaf_id");
    }
    if (parents.contains(*document.current_leaf_id)) {
      return Invalid("current_leaf_id must name a message without children", "current_leaf_id");
    }
  }
  return {};
}

}  // namespace

std::vector<const Message*> ActiveBranch(const ConversationExport& document) {
  std::vector<const Message*> branch;
  if (!document.current_leaf_id) return branch;
  std::unordered_map<std::string_view, const Message*> by_id;
  for (const auto& message : document.messages) by_id.emplace(message.id, &message);
  auto at = by_id.find(*document.current_leaf_id);
  // Parents come first in the list, so a walk up is at most as long as the list.
  while (at != by_id.end() && branch.size() < document.messages.size()) {
    branch.push_back(at->second);
    at = at->second->parent_id ? by_id.find(*at->second->parent_id) : by_id.end();
  }
  return {branch.rbegin(), branch.rend()};
}

std::string RenderMarkdown(const ConversationExport& document) {
  const Conversation& c = document.conversation;
  std::string out = fmt::format("# {}\n", c.title.empty() ? std::string("Untitled conversation") : OneLine(c.title));
  if (c.system_prompt && !c.system_prompt->empty()) out += fmt::format("\n## System prompt\n\n{}\n", *c.system_prompt);
  for (const Message* message : ActiveBranch(document)) {
    out += fmt::format("\n## {}\n\n{}\n", RoleHeading(*message), message->content);
    if (message->status == "error") {
      out += fmt::format("\n_(failed: {})_\n", OneLine(message->error.value_or("unknown error")));
    } else if (message->status != "complete") {
      out += fmt::format("\n_({})_\n", message->status == "streaming" ? "still being generated" : message->status);
    }
  }
  return out;
}

std::string ExportFileName(const Conversation& conversation, std::string_view extension) {
  std::string stem;
  for (const char c : conversation.title) {
    if (stem.size() == kMaxFileNameStem) break;
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (keep) {
      stem.push_back(c);
    } else if (!stem.empty() && stem.back() != '-') {
      stem.push_back('-');  // runs of anything else (spaces, punctuation, non-ASCII) become one '-'
    }
  }
  while (!stem.empty() && stem.back() == '-') stem.pop_back();
  if (stem.empty()) stem = "conversation";
  return fmt::format("{}.{}", stem, extension);
}

Task<Expected<ConversationExport>> ConversationArchive::Export(std::string_view user_id,
                                                               std::string_view conversation_id) {
  if (!LooksLikeUuid(conversation_id)) co_return NotFound();
  store::ConversationsRepository conversations(db_);
  auto found = co_await conversations.Find(user_id, conversation_id);
  if (!found) co_return Unexpected{std::move(found).error()};
  if (!found->has_value()) co_return NotFound();

  store::MessagesRepository messages(db_);
  auto size = co_await messages.Size(user_id, conversation_id);
  if (!size) co_return Unexpected{std::move(size).error()};
  if (!size->has_value()) co_return NotFound();  // deleted meanwhile
  const auto too_large = [] {
    return MakeError(ErrorCode::kPayloadTooLarge,
                     fmt::format("a conversation exports at most {} messages and {} characters of content",
                                 kMaxArchiveMessages, kMaxArchiveContentChars));
  };
  if ((*size)->messages > static_cast<std::int64_t>(kMaxArchiveMessages) ||
      (*size)->content_chars > kMaxArchiveContentChars) {
    co_return too_large();
  }
  const auto limit = static_cast<std::int64_t>(kMaxArchiveMessages) + 1;
  auto all = co_await messages.ListAll(user_id, conversation_id, limit);
  if (!all) co_return Unexpected{std::move(all).error()};
  if (all->size() > kMaxArchiveMessages) co_return too_large();  // grew meanwhile
  auto leaf = co_await messages.CurrentLeaf(user_id, conversation_id);
  if (!leaf) co_return Unexpected{std::move(leaf).error()};
  if (!leaf->has_value()) co_return NotFound();

  ConversationExport document;
  document.conversation = std::move(**found);
  document.current_leaf_id = std::move(**leaf);
  document.messages = ParentsFirst(std::move(*all));
  co_return document;
}

Task<Expected<Conversation>> ConversationArchive::Import(std::string_view user_id, const ConversationImport& document) {
  if (auto ok = CheckImport(document); !ok) co_return Unexpected{std::move(ok).error()};

  const SystemTime now = clock_.Now();
  Conversation conversation;
  conversation.id = NewUuidV7();
  conversation.user_id = std::string(user_id);
  conversation.title = document.conversation.title;
  conversation.model = document.conversation.model;
  conversation.system_prompt = document.conversation.system_prompt;
  conversation.params = document.conversation.params;
  conversation.pinned = document.pinned;
  conversation.archived = document.archived;
  conversation.created_at = FormatRfc3339(now);
  conversation.updated_at = conversation.created_at;

  // New ids and strictly increasing times, in list order (parents first).
  std::vector<Message> records;
  records.reserve(document.messages.size());
  std::unordered_map<std::string_view, std::string> new_ids;
  std::optional<std::chrono::sys_time<std::chrono::milliseconds>> previous;
  for (const ImportedMessage& in : document.messages) {
    Message m;
    m.id = NewUuidV7();
    m.conversation_id = conversation.id;
    if (in.parent_id) m.parent_id = new_ids.at(*in.parent_id);  // CheckImport: an earlier message
    m.role = in.role;
    m.content = in.content;
    m.status = in.status == "streaming" ? "incomplete" : in.status;
    m.model = in.model;
    m.prompt_tokens = in.prompt_tokens;
    m.completion_tokens = in.completion_tokens;
    m.finish_reason = in.finish_reason;
    m.error = in.error;
    auto time = std::chrono::time_point_cast<std::chrono::milliseconds>(
        in.created_at ? ParseRfc3339(*in.created_at).value_or(now) : now);
    if (previous && time <= *previous) time = *previous + std::chrono::milliseconds(1);
    previous = time;
    m.created_at = FormatRfc3339(time);
    m.updated_at = m.created_at;
    new_ids.emplace(in.id, m.id);
    records.push_back(std::move(m));
  }
  std::optional<std::string> leaf;
  if (document.current_leaf_id) {
    leaf = new_ids.at(*document.current_leaf_id);
  } else if (!records.empty()) {
    leaf = records.back().id;
  }

  auto transaction = co_await db_.Begin();
  if (!transaction) co_return Unexpected{std::move(transaction).error()};
  store::ConversationsRepository conversations(**transaction);
  auto created = co_await conversations.Insert(conversation);
  if (!created) co_return Unexpected{std::move(created).error()};
  store::MessagesRepository messages(**transaction);
  for (const Message& record : records) {
    auto inserted = co_await messages.Insert(user_id, record);
    if (!inserted) co_return Unexpected{std::move(inserted).error()};
    if (!*inserted) co_return MakeError(ErrorCode::kInternal, "an imported message could not be stored");
  }
  if (leaf) {
    auto moved = co_await messages.SetCurrentLeaf(user_id, conversation.id, *leaf, conversation.updated_at);
    if (!moved) co_return Unexpected{std::move(moved).error()};
  }
  auto committed = co_await (*transaction)->Commit();
  if (!committed) co_return Unexpected{std::move(committed).error()};
  co_return conversation;
}

}  // namespace chatd::chat
