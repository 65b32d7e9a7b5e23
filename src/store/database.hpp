// The database seen by the rest of chatd: asynchronous, dialect-neutral, and the only
// door to SQL (which lives in store/ alone). Two backends implement it:
//   SqliteDatabase   — one writer connection and N reader connections; every call runs on
//                      store-owned threads, never on the calling I/O thread.
//   PostgresDatabase — a pool of libpq connections driven with libpq's non-blocking API
//                      on the calling coroutine's executor (no thread hop).
// Statements use PostgreSQL-style placeholders ($1, $2, ...) in both dialects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/asio.hpp"
#include "core/expected.hpp"

namespace chatd::store {

enum class Dialect { kSqlite, kPostgres };

/// A bound statement parameter. Strings are copied into the statement by the backend.
using Param = std::variant<std::nullptr_t, std::int64_t, double, std::string>;
using Params = std::vector<Param>;

/// A materialised result: column names and rows of nullable text cells (SQLite integers
/// and reals arrive formatted as text; PostgreSQL sends text). Small and copyable.
class Result {
 public:
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::int64_t affected_rows = 0;

  bool empty() const { return rows.empty(); }
  std::size_t size() const { return rows.size(); }
  /// Index of a column by name; throws std::out_of_range when absent (a bug in store/).
  std::size_t Column(std::string_view name) const;
  const std::optional<std::string>& Cell(std::size_t row, std::string_view column) const {
    return rows.at(row).at(Column(column));
  }
  std::string Text(std::size_t row, std::string_view column) const;      // "" when NULL
  std::int64_t Int(std::size_t row, std::string_view column) const;      // 0 when NULL
  double Number(std::size_t row, std::string_view column) const;         // 0 when NULL; integers too
  bool IsNull(std::size_t row, std::string_view column) const { return !Cell(row, column); }
};

/// A statement runner: the database itself (autocommit) or an open transaction.
class Executor {
 public:
  virtual ~Executor() = default;
  /// Runs one statement. Errors are already mapped: a unique-constraint violation is
  /// kConflict, a lost connection or timeout kUnavailable, anything else kInternal with a
  /// message that never contains SQL text or parameters (those are logged instead).
  /// Placeholders are "$<n>", bound to params[n - 1] in both dialects; SQLite also takes
  /// "?", the value at its position (a statement with thousands of "$<n>" costs SQLite a
  /// linear scan of the names for each one when it is prepared).
  virtual Task<Expected<Result>> Execute(std::string_view sql, Params params = {}) = 0;
};

/// An open transaction. Commit() ends it; if it is destroyed without a successful
/// Commit(), it is rolled back (asynchronously, before its connection is reused).
class Transaction : public Executor {
 public:
  virtual Task<Expected<void>> Commit() = 0;
};

struct PoolStats {
  std::size_t size = 0;         // connections the pool may hold
  std::size_t checked_out = 0;  // connections in use right now
};

/// One statement of Database::ExecuteAll.
struct Statement {
  std::string_view sql;  // a constant or caller-kept text of store/: it must outlive the call
  Params params;
  bool must_change = false;  // changing no row rolls the whole transaction back
};

class Database : public Executor {
 public:
  virtual Dialect dialect() const = 0;
  /// Starts a write transaction (SQLite: holds the single writer until it ends).
  virtual Task<Expected<std::unique_ptr<Transaction>>> Begin() = 0;
  /// Runs one write statement once per parameter set, all in one transaction (a batch of
  /// updates: one commit instead of many). Returns the rows each one affected. SQLite
  /// runs the whole batch in one hop to its writer thread; the default runs it through
  /// Begin().
  virtual Task<Expected<std::vector<std::int64_t>>> ExecuteBatch(std::string_view sql, std::vector<Params> rows);
  /// Runs `statements` in order in one transaction: true once committed; false, and
  /// nothing written, when one marked `must_change` changed no row. SQLite runs them all
  /// in one hop to its writer thread, so a busy I/O thread does not hold the writer
  /// between statements; the default runs them through Begin().
  virtual Task<Expected<bool>> ExecuteAll(std::vector<Statement> statements);
  /// A cheap round trip to the server; bounded by a short timeout. Used by /health.
  virtual Task<Expected<void>> Ping() = 0;
  /// Applies the embedded migrations that are not yet recorded in schema_migrations.
  /// Safe when several processes call it at once. Returns how many were applied.
  virtual Task<Expected<int>> Migrate() = 0;
  /// Marks the end of the process: closes connections; pending calls fail kUnavailable.
  virtual void Close() = 0;
  virtual PoolStats Stats() const = 0;
};

}  // namespace chatd::store
