#include "store/conversations_repository.hpp"

#include <utility>

#include "store/keyset.hpp"

namespace chatd::store {

namespace {

// --- SQL -----------------------------------------------------------------------------

constexpr std::string_view kConversationColumns =
    "id, user_id, title, model, system_prompt, params, pinned, archived, created_at, updated_at";

constexpr std::string_view kInsertConversation =
    "INSERT INTO conversations (id, user_id, title, model, system_prompt, params, pinned, archived, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

// (Built once, on first use: no non-trivial globals.)
const std::string& FindConversationSql() {
  static const std::string sql =
      "SELECT " + std::string(kConversationColumns) + " FROM conversations WHERE id = $1 AND user_id = $2";
  return sql;
}

// Does not bump updated_at: a title found in the background must not reorder the list.
constexpr std::string_view kSetTitleIfUntitled =
    "UPDATE conversations SET title = $3 WHERE id = $1 AND user_id = $2 AND title = ''";
constexpr std::string_view kDeleteConversation = "DELETE FROM conversations WHERE id = $1 AND user_id = $2";

// List and Update are assembled from these (their conditions and SET lists vary).
const std::string& ListConversationsSql() {
  static const std::string sql =
      "SELECT " + std::string(kConversationColumns) + " FROM conversations WHERE user_id = $1 AND archived = $2";
  return sql;
}
constexpr std::string_view kUpdateConversation = "UPDATE conversations SET updated_at = $3";
const std::string& UpdateWhereSql() {
  static const std::string sql = " WHERE id = $1 AND user_id = $2 RETURNING " + std::string(kConversationColumns);
  return sql;
}

// --- helpers -------------------------------------------------------------------------

Param Flag(bool value) { return std::int64_t{value ? 1 : 0}; }  // PostgreSQL reads '1'/'0' as booleans

Param NullableText(const std::optional<std::string>& text) { return text ? Param(*text) : Param(nullptr); }

ConversationRecord ReadConversation(const Result& rows, std::size_t i) {
  ConversationRecord c;
  c.id = rows.Text(i, "id");
  c.user_id = rows.Text(i, "user_id");
  c.title = rows.Text(i, "title");
  c.model = rows.Text(i, "model");
  c.system_prompt = rows.Cell(i, "system_prompt");
  c.params = rows.Text(i, "params");
  c.pinned = rows.Int(i, "pinned") != 0;
  c.archived = rows.Int(i, "archived") != 0;
  c.created_at = rows.Text(i, "created_at");
  c.updated_at = rows.Text(i, "updated_at");
  return c;
}

// Appends ", column = $n" with `value` as the next parameter.
void Set(std::string& sql, Params& params, std::string_view column, Param value) {
  params.push_back(std::move(value));
  sql.append(", ").append(column).append(" = $").append(std::to_string(params.size()));
}

}  // namespace

Task<Expected<void>> ConversationsRepository::Insert(const ConversationRecord& c) {
  Params params{c.id,     c.user_id,      c.title,          c.model,      NullableText(c.system_prompt),
                c.params, Flag(c.pinned), Flag(c.archived), c.created_at, c.updated_at};
  auto inserted = co_await db_.Execute(kInsertConversation, std::move(params));
  if (!inserted) co_return Unexpected{std::move(inserted).error()};
  co_return Expected<void>{};
}

Task<Expected<std::optional<ConversationRecord>>> ConversationsRepository::Find(std::string_view user_id,
                                                                                std::string_view id) {
  Params params{std::string(id), std::string(user_id)};
  auto rows = co_await db_.Execute(FindConversationSql(), std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<ConversationRecord>();
  co_return std::optional<ConversationRecord>(ReadConversation(*rows, 0));
}

Task<Expected<Page<ConversationRecord>>> ConversationsRepository::List(std::string_view user_id,
                                                                       const ConversationFilter& filter,
                                                                       const PageRequest& page) {
  Params params{std::string(user_id), Flag(filter.archived)};
  std::string sql = ListConversationsSql();
  if (filter.pinned) {
    params.push_back(Flag(*filter.pinned));
    sql += " AND pinned = $" + std::to_string(params.size());
  }
  if (!filter.title_contains.empty()) {
    params.emplace_back(LikeSubstringPattern(filter.title_contains));
    sql += " AND LOWER(title) LIKE $" + std::to_string(params.size()) + " ESCAPE '\\'";
  }
  auto limit = AppendKeysetPage(sql, params, page, "updated_at", SortOrder::kDescending);
  if (!limit) co_return Unexpected{std::move(limit).error()};
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  co_return ReadKeysetPage<ConversationRecord>(*rows, *limit, ReadConversation,
                                               [](const ConversationRecord& c) { return c.updated_at; });
}

Task<Expected<std::optional<ConversationRecord>>> ConversationsRepository::Update(std::string_view user_id,
                                                                                  std::string_view id,
                                                                                  const ConversationUpdate& update,
                                                                                  std::string_view now) {
  Params params{std::string(id), std::string(user_id), std::string(now)};
  std::string sql(kUpdateConversation);
  if (update.title) Set(sql, params, "title", *update.title);
  if (update.model) Set(sql, params, "model", *update.model);
  if (update.system_prompt) Set(sql, params, "system_prompt", NullableText(*update.system_prompt));
  if (update.params) Set(sql, params, "params", *update.params);
  if (update.pinned) Set(sql, params, "pinned", Flag(*update.pinned));
  if (update.archived) Set(sql, params, "archived", Flag(*update.archived));
  sql += UpdateWhereSql();
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<ConversationRecord>();
  co_return std::optional<ConversationRecord>(ReadConversation(*rows, 0));
}

Task<Expected<bool>> ConversationsRepository::SetTitleIfUntitled(std::string_view user_id, std::string_view id,
                                                                 std::string_view title) {
  Params params{std::string(id), std::string(user_id), std::string(title)};
  auto updated = co_await db_.Execute(kSetTitleIfUntitled, std::move(params));
  if (!updated) co_return Unexpected{std::move(updated).error()};
  co_return updated->affected_rows > 0;
}

Task<Expected<bool>> ConversationsRepository::Delete(std::string_view user_id, std::string_view id) {
  Params params{std::string(id), std::string(user_id)};
  auto deleted = co_await db_.Execute(kDeleteConversation, std::move(params));
  if (!deleted) co_return Unexpected{std::move(deleted).error()};
  co_return deleted->affected_rows > 0;
}

}  // namespace chatd::store
