// Opening a database from a URL: the one place that knows which backend a URL means.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "store/database.hpp"

namespace chatd::store {

struct DatabaseConfig {
  /// sqlite:///abs/path, sqlite://relative/path, sqlite::memory: (tests), or
  /// postgresql://user:pass@host:port/db?... (postgres:// also accepted).
  std::string url;
  /// PostgreSQL: the most connections the pool holds (DB_POOL_SIZE).
  std::size_t pool_size = 10;
  /// PostgreSQL: bound on connecting and on waiting for a free pooled connection.
  /// SQLite: bound on waiting for the writer and busy_timeout for other processes' locks.
  std::chrono::milliseconds connect_timeout{5000};
  /// Bound on one statement; a PostgreSQL statement past it is cancelled.
  std::chrono::milliseconds statement_timeout{30000};
  /// SQLite (file databases): read-only connections beside the single writer.
  std::size_t sqlite_readers = 4;
};

/// Opens the backend named by `config.url`. SQLite files are created (with their parent
/// directory) when missing; PostgreSQL connects lazily, on first use. A malformed URL or
/// config is kInvalidArgument with a message that never contains the password.
/// Blocking (opens SQLite files): call at startup, not on an I/O thread.
Expected<std::unique_ptr<Database>> OpenDatabase(const DatabaseConfig& config);

/// `url` with its password replaced by "***" (userinfo and password= parameters), for
/// logs and `chatd config check`.
std::string RedactDatabaseUrl(std::string_view url);

}  // namespace chatd::store
