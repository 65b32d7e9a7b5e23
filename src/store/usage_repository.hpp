// The SQL behind usage: the gateway's usage_events, written in batches by
// gateway::UsageRecorder and read back as reports (GET /usage, GET /admin/usage) and as a
// key's spend in a budget period (gateway::KeyLimiter, when it first meets a key).
//
// Isolation lives in the SQL: a user's report names `user_id = $n` itself; only the admin
// report (UsageQuery::all_users) has no such condition.
//
// Times are RFC 3339 UTC strings with milliseconds written by the caller; `from` is
// inclusive, `to` exclusive, and both compare as text in SQLite and as timestamps in
// PostgreSQL, which order the same.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "store/database.hpp"

namespace chatd::store {

/// One row of usage_events.
struct UsageEventRecord {
  std::string id;  // UUIDv7, made when the event was recorded: a retried batch inserts it once
  std::string user_id;
  std::string api_key_id;  // empty: an access token (a session)
  std::string model;
  std::string provider;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;
  double cost = 0;  // USD
  std::int64_t latency_ms = 0;
  std::optional<std::int64_t> ttft_ms;
  std::string status = "ok";  // "ok" | "error" | "cancelled" | "cached"
  std::string created_at;
};

enum class UsageGroupBy { kNone, kKey, kUser, kModel, kDay };

struct UsageQuery {
  std::string user_id;     // the user whose events count; ignored when all_users
  bool all_users = false;  // the admin report: every user's events
  std::string from;        // inclusive, RFC 3339
  std::string to;          // exclusive, RFC 3339
  UsageGroupBy group_by = UsageGroupBy::kNone;
  std::size_t max_groups = 100;  // at most this many groups (the largest by tokens; days: the first)
};

struct UsageTotals {
  std::int64_t requests = 0;
  std::int64_t errors = 0;      // status "error" or "cancelled"
  std::int64_t cache_hits = 0;  // status "cached": answered by the gateway's response cache
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;
  double cost = 0;  // USD
};

struct UsageGroup {
  std::string value;  // the key id, user id, model or day ("2026-11-23"); empty: no key (sessions)
  std::string label;  // the key's name, or the user's email; empty for models and days
  UsageTotals totals;
};

struct UsageReport {
  UsageTotals totals;
  std::vector<UsageGroup> groups;  // empty when group_by is kNone
  bool more_groups = false;        // max_groups were shown and there are others
};

/// What a key spent since a time: the budget's starting point after a restart.
struct UsageSpend {
  std::int64_t tokens = 0;  // prompt + completion
  double cost = 0;          // USD
};

class UsageRepository {
 public:
  explicit UsageRepository(Database& database) : db_(database) {}

  /// Inserts the events in one transaction (multi-row statements); an event whose id is
  /// already stored is skipped, so a batch retried after an unclear failure (the commit
  /// may have landed) is not counted twice. All or nothing.
  Task<Expected<void>> Insert(std::span<const UsageEventRecord> events);

  /// The key's tokens and cost over events created at or after `since`.
  Task<Expected<UsageSpend>> KeySpend(std::string_view api_key_id, std::string_view since);

  /// Totals over the query's range, and per group when asked.
  Task<Expected<UsageReport>> Report(const UsageQuery& query);

 private:
  Database& db_;
};

}  // namespace chatd::store
