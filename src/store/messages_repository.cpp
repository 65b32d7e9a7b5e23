#include "store/messages_repository.hpp"

#include <map>
#include <utility>

#include "store/keyset.hpp"

namespace chatd::store {

namespace {

// --- SQL -----------------------------------------------------------------------------
// Columns are qualified with `m.` (the message) because most statements join.

constexpr std::string_view kMessageColumns =
    "m.id, m.conversation_id, m.parent_id, m.role, m.content, m.status, m.model, m.prompt_tokens, "
    "m.completion_tokens, m.finish_reason, m.error, m.created_at, m.updated_at";

// Inserts only into this user's conversation ($14), under a parent of the same one ($3).
// (INSERT ... SELECT: PostgreSQL types the parameters from the target columns.) Both
// statements take the same 14 parameters; the root one only checks that $3 (the parent)
// is empty, since PostgreSQL refuses a parameter it cannot type.
constexpr std::string_view kInsertRoot =
    "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, model, prompt_tokens, "
    "completion_tokens, finish_reason, error, created_at, updated_at) "
    "SELECT $1, c.id, NULL, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM conversations c "
    "WHERE c.id = $2 AND c.user_id = $14 AND $3 = ''";
constexpr std::string_view kInsertChild =
    "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, model, prompt_tokens, "
    "completion_tokens, finish_reason, error, created_at, updated_at) "
    "SELECT $1, c.id, p.id, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 "
    "FROM conversations c JOIN messages p ON p.conversation_id = c.id "
    "WHERE c.id = $2 AND c.user_id = $14 AND p.id = $3";

// The owner check is a correlated EXISTS, one primary-key lookup: SQLite runs an
// uncorrelated `conversation_id IN (SELECT ... WHERE user_id = $2)` by listing every
// conversation of the user at each execution, which made a growing answer's flush cost
// grow with its owner's conversations (bench/streams: one user, 2 000 conversations).
constexpr std::string_view kUpdateContent =
    "UPDATE messages SET content = $3, status = $4, prompt_tokens = $5, completion_tokens = $6, "
    "finish_reason = $7, error = $8, updated_at = $9 "
    "WHERE id = $1 AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = messages.conversation_id AND c.user_id = $2)";

constexpr std::string_view kCurrentLeaf = "SELECT current_leaf_id FROM conversations WHERE id = $1 AND user_id = $2";

constexpr std::string_view kSetCurrentLeaf =
    "UPDATE conversations SET current_leaf_id = $3, updated_at = $4 "
    "WHERE id = $1 AND user_id = $2 "
    "AND EXISTS (SELECT 1 FROM messages m WHERE m.id = $3 AND m.conversation_id = $1)";

const std::string& GetMessageSql() {
  static const std::string sql =
      "SELECT " + std::string(kMessageColumns) +
      " FROM messages m JOIN conversations c ON c.id = m.conversation_id "
      "WHERE m.id = $1 AND m.conversation_id = $2 AND c.user_id = $3";
  return sql;
}

// The path from $1 (the leaf) up to the root, `depth` counting from the leaf; oldest first
// is depth DESC. A page after the cursor message $4 starts with that message itself (so a
// cursor that is not on the path yields nothing, told apart from "no more messages").
const std::string& BranchSqlPrefix() {
  static const std::string sql =
      "WITH RECURSIVE path(id, parent_id, depth) AS ("
      " SELECT m.id, m.parent_id, 0 FROM messages m JOIN conversations c ON c.id = m.conversation_id"
      "  WHERE m.id = $1 AND m.conversation_id = $2 AND c.user_id = $3"
      " UNION ALL"
      " SELECT p.id, p.parent_id, path.depth + 1 FROM path JOIN messages p ON p.id = path.parent_id"
      "  WHERE p.conversation_id = $2 AND path.depth < " +
      std::to_string(kMaxBranchDepth) +
      ") SELECT " + std::string(kMessageColumns) + " FROM path JOIN messages m ON m.id = path.id";
  return sql;
}
constexpr std::string_view kBranchAfterCursor = " WHERE path.depth <= (SELECT q.depth FROM path q WHERE q.id = $4)";
constexpr std::string_view kBranchOrder = " ORDER BY path.depth DESC LIMIT ";

// Follows the newest child from $1 down to a leaf; the deepest row is the leaf.
const std::string& NewestLeafSql() {
  static const std::string sql =
      "WITH RECURSIVE down(id, depth) AS ("
      " SELECT m.id, 0 FROM messages m JOIN conversations c ON c.id = m.conversation_id"
      "  WHERE m.id = $1 AND m.conversation_id = $2 AND c.user_id = $3"
      " UNION ALL"
      " SELECT (SELECT n.id FROM messages n WHERE n.parent_id = down.id"
      "          ORDER BY n.created_at DESC, n.id DESC LIMIT 1), down.depth + 1"
      "  FROM down WHERE down.id IS NOT NULL AND down.depth < " +
      std::to_string(kMaxBranchDepth) +
      ") SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1";
  return sql;
}

// Siblings of the messages $3.. of conversation $2 (owned by $1): children of the same
// parent, and for roots the other roots. Built per call (the IN list varies).
std::string SiblingsSql(std::size_t count) {
  std::string in;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) in += ", ";
    in += "$" + std::to_string(i + 3);
  }
  const std::string owner =
      " AND m.conversation_id = $2 AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = $2 AND c.user_id = $1)";
  return "SELECT m.id AS message_id, s.id AS sibling_id, s.created_at AS sibling_created_at"
         " FROM messages m JOIN messages s ON s.parent_id = m.parent_id"
         " WHERE m.id IN (" + in + ")" + owner +
         " UNION ALL"
         " SELECT m.id AS message_id, s.id AS sibling_id, s.created_at AS sibling_created_at"
         " FROM messages m JOIN messages s ON s.conversation_id = m.conversation_id AND s.parent_id IS NULL"
         " WHERE m.parent_id IS NULL AND m.id IN (" + in + ")" + owner +
         " ORDER BY message_id, sibling_created_at, sibling_id";
}

constexpr std::string_view kConversationSize =
    "SELECT COUNT(m.id) AS messages, COALESCE(SUM(LENGTH(m.content)), 0) AS content_chars"
    " FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
    " WHERE c.id = $1 AND c.user_id = $2 GROUP BY c.id";

const std::string& ListAllSql() {
  static const std::string sql = "SELECT " + std::string(kMessageColumns) +
                                 " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                                 " WHERE m.conversation_id = $1 AND c.user_id = $2"
                                 " ORDER BY m.created_at, m.id LIMIT $3";
  return sql;
}

constexpr std::string_view kMarkInterrupted =
    "UPDATE messages SET status = 'incomplete', updated_at = $1 WHERE status = 'streaming'";

// --- helpers -------------------------------------------------------------------------

Param NullableText(const std::optional<std::string>& text) { return text ? Param(*text) : Param(nullptr); }

MessageRecord ReadMessage(const Result& rows, std::size_t i) {
  MessageRecord m;
  m.id = rows.Text(i, "id");
  m.conversation_id = rows.Text(i, "conversation_id");
  m.parent_id = rows.Cell(i, "parent_id");
  m.role = rows.Text(i, "role");
  m.content = rows.Text(i, "content");
  m.status = rows.Text(i, "status");
  m.model = rows.Cell(i, "model");
  m.prompt_tokens = rows.Int(i, "prompt_tokens");
  m.completion_tokens = rows.Int(i, "completion_tokens");
  m.finish_reason = rows.Cell(i, "finish_reason");
  m.error = rows.Cell(i, "error");
  m.created_at = rows.Text(i, "created_at");
  m.updated_at = rows.Text(i, "updated_at");
  return m;
}

}  // namespace

namespace {

Statement InsertStatement(std::string_view user_id, const MessageRecord& m) {
  Params params{m.id,
                m.conversation_id,
                m.parent_id.value_or(""),
                m.role,
                m.content,
                m.status,
                NullableText(m.model),
                m.prompt_tokens,
                m.completion_tokens,
                NullableText(m.finish_reason),
                NullableText(m.error),
                m.created_at,
                m.updated_at,
                std::string(user_id)};
  // No row inserted: the conversation is not the user's or the parent is not in it.
  return Statement{m.parent_id ? kInsertChild : kInsertRoot, std::move(params), /*must_change=*/true};
}

Params SetCurrentLeafParams(std::string_view user_id, std::string_view conversation_id, std::string_view message_id,
                            std::string_view now) {
  return Params{std::string(conversation_id), std::string(user_id), std::string(message_id), std::string(now)};
}

}  // namespace

Task<Expected<bool>> MessagesRepository::Insert(std::string_view user_id, const MessageRecord& m) {
  Statement insert = InsertStatement(user_id, m);
  auto inserted = co_await db_.Execute(insert.sql, std::move(insert.params));
  if (!inserted) co_return Unexpected{std::move(inserted).error()};
  co_return inserted->affected_rows > 0;
}

Task<Expected<bool>> MessagesRepository::InsertAsLeaf(Database& database, std::string_view user_id,
                                                      std::string_view conversation_id,
                                                      std::span<const MessageRecord* const> messages) {
  std::vector<Statement> statements;
  statements.reserve(messages.size() + 1);
  const MessageRecord* last = nullptr;
  for (const MessageRecord* message : messages) {
    if (message == nullptr) continue;
    statements.push_back(InsertStatement(user_id, *message));
    last = message;
  }
  if (last == nullptr) co_return true;
  statements.push_back(
      Statement{kSetCurrentLeaf, SetCurrentLeafParams(user_id, conversation_id, last->id, last->created_at)});
  co_return co_await database.ExecuteAll(std::move(statements));
}

namespace {

Params UpdateContentParams(std::string_view user_id, std::string_view message_id, MessageProgress&& p,
                           std::string_view now) {
  return Params{std::string(message_id),
                std::string(user_id),
                std::move(p.content),
                std::move(p.status),
                p.prompt_tokens,
                p.completion_tokens,
                NullableText(p.finish_reason),
                NullableText(p.error),
                std::string(now)};
}

}  // namespace

Task<Expected<void>> MessagesRepository::UpdateContents(Database& database, std::vector<ContentUpdate> updates,
                                                        std::string_view now) {
  std::vector<Params> rows;
  rows.reserve(updates.size());
  for (ContentUpdate& update : updates) {
    rows.push_back(UpdateContentParams(update.user_id, update.message_id, std::move(update.progress), now));
  }
  auto updated = co_await database.ExecuteBatch(kUpdateContent, std::move(rows));
  if (!updated) co_return Unexpected{std::move(updated).error()};
  co_return Expected<void>{};
}

Task<Expected<bool>> MessagesRepository::UpdateContent(std::string_view user_id, std::string_view message_id,
                                                       const MessageProgress& p, std::string_view now) {
  Params params = UpdateContentParams(user_id, message_id, MessageProgress(p), now);
  auto updated = co_await db_.Execute(kUpdateContent, std::move(params));
  if (!updated) co_return Unexpected{std::move(updated).error()};
  co_return updated->affected_rows > 0;
}

Task<Expected<std::optional<std::optional<std::string>>>> MessagesRepository::CurrentLeaf(
    std::string_view user_id, std::string_view conversation_id) {
  Params params{std::string(conversation_id), std::string(user_id)};
  auto rows = co_await db_.Execute(kCurrentLeaf, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<std::optional<std::string>>();
  co_return std::optional<std::optional<std::string>>(rows->Cell(0, "current_leaf_id"));
}

Task<Expected<bool>> MessagesRepository::SetCurrentLeaf(std::string_view user_id, std::string_view conversation_id,
                                                        std::string_view message_id, std::string_view now) {
  auto updated = co_await db_.Execute(kSetCurrentLeaf, SetCurrentLeafParams(user_id, conversation_id, message_id, now));
  if (!updated) co_return Unexpected{std::move(updated).error()};
  co_return updated->affected_rows > 0;
}

Task<Expected<std::optional<MessageRecord>>> MessagesRepository::Get(std::string_view user_id,
                                                                     std::string_view conversation_id,
                                                                     std::string_view message_id) {
  Params params{std::string(message_id), std::string(conversation_id), std::string(user_id)};
  auto rows = co_await db_.Execute(GetMessageSql(), std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<MessageRecord>();
  co_return std::optional<MessageRecord>(ReadMessage(*rows, 0));
}

Task<Expected<Page<MessageRecord>>> MessagesRepository::Branch(std::string_view user_id,
                                                               std::string_view conversation_id,
                                                               std::string_view leaf_id, const PageRequest& page) {
  Params params{std::string(leaf_id), std::string(conversation_id), std::string(user_id)};
  std::string sql = BranchSqlPrefix();
  const bool after_cursor = !page.cursor.empty();
  if (after_cursor) {
    auto cursor = DecodeKeysetCursor(page.cursor);
    if (!cursor) co_return Unexpected{std::move(cursor).error()};
    params.emplace_back(std::move(cursor->id));
    sql += kBranchAfterCursor;
  }
  const std::int64_t limit = KeysetPageLimit(page);
  // One more to know whether a next page exists, and the cursor's own row first.
  const std::int64_t fetch = limit + 1 + (after_cursor ? 1 : 0);
  params.emplace_back(fetch);
  sql.append(kBranchOrder).append("$").append(std::to_string(params.size()));
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (after_cursor && rows->empty()) {
    co_return MakeError(ErrorCode::kInvalidArgument, "cursor is not on the active branch", "cursor");
  }
  Page<MessageRecord> out;
  for (std::size_t i = after_cursor ? 1 : 0; i < rows->size(); ++i) {
    if (static_cast<std::int64_t>(out.items.size()) == limit) {
      out.next_cursor = EncodeKeysetCursor(out.items.back().created_at, out.items.back().id);
      break;
    }
    out.items.push_back(ReadMessage(*rows, i));
  }
  co_return out;
}

Task<Expected<std::vector<SiblingSet>>> MessagesRepository::Siblings(std::string_view user_id,
                                                                     std::string_view conversation_id,
                                                                     const std::vector<std::string>& message_ids) {
  std::vector<SiblingSet> out;
  if (message_ids.empty()) co_return out;
  Params params{std::string(user_id), std::string(conversation_id)};
  for (const auto& id : message_ids) params.emplace_back(id);
  auto rows = co_await db_.Execute(SiblingsSql(message_ids.size()), std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  std::map<std::string, std::vector<std::string>, std::less<>> by_message;
  for (std::size_t i = 0; i < rows->size(); ++i) {
    by_message[rows->Text(i, "message_id")].push_back(rows->Text(i, "sibling_id"));
  }
  for (const auto& id : message_ids) {
    auto found = by_message.find(id);
    if (found != by_message.end()) out.push_back(SiblingSet{id, found->second});
  }
  co_return out;
}

Task<Expected<std::optional<std::string>>> MessagesRepository::NewestLeafUnder(std::string_view user_id,
                                                                               std::string_view conversation_id,
                                                                               std::string_view message_id) {
  Params params{std::string(message_id), std::string(conversation_id), std::string(user_id)};
  auto rows = co_await db_.Execute(NewestLeafSql(), std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<std::string>();
  co_return std::optional<std::string>(rows->Text(0, "id"));
}

Task<Expected<std::optional<ConversationSize>>> MessagesRepository::Size(std::string_view user_id,
                                                                         std::string_view conversation_id) {
  Params params{std::string(conversation_id), std::string(user_id)};
  auto rows = co_await db_.Execute(kConversationSize, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<ConversationSize>();
  co_return std::optional<ConversationSize>(ConversationSize{rows->Int(0, "messages"), rows->Int(0, "content_chars")});
}

Task<Expected<std::vector<MessageRecord>>> MessagesRepository::ListAll(std::string_view user_id,
                                                                       std::string_view conversation_id,
                                                                       std::int64_t limit) {
  Params params{std::string(conversation_id), std::string(user_id), limit};
  auto rows = co_await db_.Execute(ListAllSql(), std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  std::vector<MessageRecord> out;
  out.reserve(rows->size());
  for (std::size_t i = 0; i < rows->size(); ++i) out.push_back(ReadMessage(*rows, i));
  co_return out;
}

Task<Expected<std::int64_t>> MessagesRepository::MarkInterruptedGenerations(std::string_view now) {
  Params params{std::string(now)};
  auto updated = co_await db_.Execute(kMarkInterrupted, std::move(params));
  if (!updated) co_return Unexpected{std::move(updated).error()};
  co_return updated->affected_rows;
}

}  // namespace chatd::store
