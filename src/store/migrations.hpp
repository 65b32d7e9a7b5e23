// Embedded schema migrations, one ordered list per dialect. A migration is never edited
// once released: a change to the schema is a new migration with the next version.
#pragma once

#include <span>
#include <string_view>

namespace chatd::store {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;  // one or more statements
};

std::span<const Migration> SqliteMigrations();
std::span<const Migration> PostgresMigrations();

/// Every table of DESIGN.md's data model, as the migrations create it in both dialects.
inline constexpr std::string_view kSchemaTables[] = {
    "users",           "refresh_tokens", "api_keys", "conversations", "messages",  "message_references", "usage_events",
    "knowledge_bases", "documents",      "chunks",   "jobs",          "schedules", "schema_migrations",
    "secrets",
};

}  // namespace chatd::store
