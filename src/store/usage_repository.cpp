#include "store/usage_repository.hpp"

#include <algorithm>
#include <utility>

namespace chatd::store {

namespace {

// --- SQL -----------------------------------------------------------------------------

// Events are inserted through a join with users and api_keys, so an event whose user or
// key was deleted while it waited in the recorder's buffer is stored without that
// reference (as ON DELETE SET NULL would have left it) instead of failing its whole
// batch on the foreign key. VALUES columns are column1..column13 in both dialects; the
// WHERE is needed by SQLite's parser before ON CONFLICT in an INSERT ... SELECT.
// SQLite first tries the plain insert (kInsertEventsDirect): the join materialises the
// VALUES in a temporary table and looks up both parents once more than the foreign keys
// do — a quarter of the writer's work per event — so the join runs only for a batch that
// did meet a deleted parent. (PostgreSQL always joins.)
constexpr std::string_view kInsertEventsDirect =
    "INSERT INTO usage_events (id, user_id, api_key_id, model, provider, prompt_tokens, completion_tokens, "
    "cached_tokens, cost, latency_ms, ttft_ms, status, created_at) VALUES ";
constexpr std::string_view kInsertEventsDirectTail = " ON CONFLICT (id) DO NOTHING";
constexpr std::string_view kInsertEventsHead =
    "INSERT INTO usage_events (id, user_id, api_key_id, model, provider, prompt_tokens, completion_tokens, "
    "cached_tokens, cost, latency_ms, ttft_ms, status, created_at) "
    "SELECT v.column1, u.id, k.id, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, "
    "v.column10, v.column11, v.column12, v.column13 FROM (VALUES ";
constexpr std::string_view kInsertEventsTail =
    ") AS v LEFT JOIN users u ON u.id = v.column2 LEFT JOIN api_keys k ON k.id = v.column3 "
    "WHERE 1 = 1 ON CONFLICT (id) DO NOTHING";
constexpr std::size_t kColumns = 13;
// Rows per statement: 1300 parameters, far below both dialects' limits.
constexpr std::size_t kRowsPerStatement = 100;

// PostgreSQL types untyped parameters in VALUES as text, which does not convert to the
// integer and timestamp columns by itself; SQLite needs no casts (and would read a
// TIMESTAMPTZ cast as NUMERIC, mangling the text).
constexpr std::string_view kPostgresColumnTypes[kColumns] = {
    "", "", "", "", "", "BIGINT", "BIGINT", "BIGINT", "DOUBLE PRECISION", "BIGINT", "BIGINT", "", "TIMESTAMPTZ"};

constexpr std::string_view kSpend =
    "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, COALESCE(SUM(cost), 0) AS cost "
    "FROM usage_events WHERE api_key_id = $1 AND created_at >= $2";

constexpr std::string_view kAggregates =
    "COUNT(*) AS requests, "
    "COALESCE(SUM(CASE WHEN e.status IN ('error', 'cancelled') THEN 1 ELSE 0 END), 0) AS errors, "
    "COALESCE(SUM(CASE WHEN e.status = 'cached' THEN 1 ELSE 0 END), 0) AS cache_hits, "
    "COALESCE(SUM(e.prompt_tokens), 0) AS prompt_tokens, "
    "COALESCE(SUM(e.completion_tokens), 0) AS completion_tokens, "
    "COALESCE(SUM(e.cached_tokens), 0) AS cached_tokens, COALESCE(SUM(e.cost), 0) AS cost";

constexpr std::string_view kLargestFirst = "SUM(e.prompt_tokens + e.completion_tokens) DESC, COUNT(*) DESC, value";

UsageTotals ReadTotals(const Result& rows, std::size_t i) {
  UsageTotals totals;
  totals.requests = rows.Int(i, "requests");
  totals.errors = rows.Int(i, "errors");
  totals.cache_hits = rows.Int(i, "cache_hits");
  totals.prompt_tokens = rows.Int(i, "prompt_tokens");
  totals.completion_tokens = rows.Int(i, "completion_tokens");
  totals.cached_tokens = rows.Int(i, "cached_tokens");
  totals.cost = rows.Number(i, "cost");
  return totals;
}

Param Nullable(const std::string& text) { return text.empty() ? Param(nullptr) : Param(text); }

// The insert of `rows` events. PostgreSQL numbers them: $1..$13 for the first event,
// $14..$26 for the next, and so on. SQLite gets "?": preparing 1 300 "$<n>" names costs it
// a linear scan of the names seen so far for each one (a quarter of a request's
// instructions, under callgrind).
std::string InsertEventsSql(std::size_t rows, bool postgres, bool direct = false) {
  std::string sql(direct ? kInsertEventsDirect : kInsertEventsHead);
  for (std::size_t row = 0; row < rows; ++row) {
    sql += row == 0 ? "(" : ", (";
    for (std::size_t c = 0; c < kColumns; ++c) {
      const std::string placeholder = postgres ? "$" + std::to_string(row * kColumns + c + 1) : "?";
      if (c > 0) sql += ", ";
      if (postgres && !kPostgresColumnTypes[c].empty()) {
        sql += "CAST(" + placeholder + " AS " + std::string(kPostgresColumnTypes[c]) + ")";
      } else {
        sql += placeholder;
      }
    }
    sql += ")";
  }
  sql += direct ? kInsertEventsDirectTail : kInsertEventsTail;
  return sql;
}

// The event's values in column order.
void AppendEventParams(const UsageEventRecord& e, Params& params) {
  params.emplace_back(e.id);
  params.emplace_back(Nullable(e.user_id));
  params.emplace_back(Nullable(e.api_key_id));
  params.emplace_back(e.model);
  params.emplace_back(e.provider);
  params.emplace_back(e.prompt_tokens);
  params.emplace_back(e.completion_tokens);
  params.emplace_back(e.cached_tokens);
  params.emplace_back(e.cost);
  params.emplace_back(e.latency_ms);
  params.emplace_back(e.ttft_ms ? Param(*e.ttft_ms) : Param(nullptr));
  params.emplace_back(e.status);
  params.emplace_back(e.created_at);
}

// The batch's statements, kRowsPerStatement events each. Their SQL texts go to `sqls`,
// which must outlive the statements (Statement::sql is a view): all are made before the
// first view is taken.
std::vector<Statement> InsertStatements(std::span<const UsageEventRecord> events, bool postgres, bool direct,
                                        std::vector<std::string>& sqls) {
  sqls.clear();
  for (std::size_t start = 0; start < events.size(); start += kRowsPerStatement) {
    sqls.push_back(InsertEventsSql(std::min(kRowsPerStatement, events.size() - start), postgres, direct));
  }
  std::vector<Statement> statements;
  statements.reserve(sqls.size());
  for (std::size_t start = 0, n = 0; start < events.size(); start += kRowsPerStatement, ++n) {
    const std::size_t end = std::min(events.size(), start + kRowsPerStatement);
    Params values;
    values.reserve((end - start) * kColumns);
    for (std::size_t i = start; i < end; ++i) AppendEventParams(events[i], values);
    statements.push_back(Statement{sqls[n], std::move(values)});
  }
  return statements;
}

}  // namespace

// One ExecuteAll: on SQLite the whole batch is one hop to the writer thread. SQLite first
// tries the plain insert; only a batch that met a deleted user or key (a foreign-key
// failure, kInvalidArgument) is written again through the join.
Task<Expected<void>> UsageRepository::Insert(std::span<const UsageEventRecord> events) {
  if (events.empty()) co_return Expected<void>{};
  const bool postgres = db_.dialect() == Dialect::kPostgres;
  std::vector<std::string> sqls;
  if (!postgres) {
    auto direct = co_await db_.ExecuteAll(InsertStatements(events, false, /*direct=*/true, sqls));
    if (direct) co_return Expected<void>{};
    if (direct.error().code != ErrorCode::kInvalidArgument) co_return Unexpected{std::move(direct).error()};
  }
  auto joined = co_await db_.ExecuteAll(InsertStatements(events, postgres, /*direct=*/false, sqls));
  if (!joined) co_return Unexpected{std::move(joined).error()};
  co_return Expected<void>{};
}

Task<Expected<UsageSpend>> UsageRepository::KeySpend(std::string_view api_key_id, std::string_view since) {
  Params params{std::string(api_key_id), std::string(since)};
  auto rows = co_await db_.Execute(kSpend, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  co_return UsageSpend{rows->Int(0, "tokens"), rows->Number(0, "cost")};
}

Task<Expected<UsageReport>> UsageRepository::Report(const UsageQuery& query) {
  Params params;
  std::string where = " WHERE e.created_at >= $1 AND e.created_at < $2";
  params.emplace_back(query.from);
  params.emplace_back(query.to);
  if (!query.all_users) {
    params.emplace_back(query.user_id);
    where += " AND e.user_id = $3";
  }

  UsageReport report;
  {
    const std::string sql = "SELECT " + std::string(kAggregates) + " FROM usage_events e" + where;
    Params copy = params;
    auto rows = co_await db_.Execute(sql, std::move(copy));
    if (!rows) co_return Unexpected{std::move(rows).error()};
    report.totals = ReadTotals(*rows, 0);
  }
  if (query.group_by == UsageGroupBy::kNone || report.totals.requests == 0) co_return report;

  std::string value, label = "''", join, order = std::string(kLargestFirst);
  switch (query.group_by) {
    case UsageGroupBy::kKey:
      value = "COALESCE(e.api_key_id, '')";
      label = "MAX(k.name)";
      join = " LEFT JOIN api_keys k ON k.id = e.api_key_id";
      break;
    case UsageGroupBy::kUser:
      value = "COALESCE(e.user_id, '')";
      label = "MAX(u.email)";
      join = " LEFT JOIN users u ON u.id = e.user_id";
      break;
    case UsageGroupBy::kModel:
      value = "e.model";
      break;
    case UsageGroupBy::kDay:
      // PostgreSQL sessions run in UTC (pg_connection.cpp), SQLite stores UTC text.
      value =
          db_.dialect() == Dialect::kPostgres ? "to_char(e.created_at, 'YYYY-MM-DD')" : "substr(e.created_at, 1, 10)";
      order = "value";
      break;
    case UsageGroupBy::kNone:
      break;
  }
  const std::size_t limit = std::max<std::size_t>(1, query.max_groups);
  const std::string sql = "SELECT " + value + " AS value, " + label + " AS label, " + std::string(kAggregates) +
                          " FROM usage_events e" + join + where + " GROUP BY " + value + " ORDER BY " + order +
                          " LIMIT " + std::to_string(limit + 1);
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  for (std::size_t i = 0; i < rows->size() && i < limit; ++i) {
    report.groups.push_back(UsageGroup{rows->Text(i, "value"), rows->Text(i, "label"), ReadTotals(*rows, i)});
  }
  report.more_groups = rows->size() > limit;
  co_return report;
}

}  // namespace chatd::store
