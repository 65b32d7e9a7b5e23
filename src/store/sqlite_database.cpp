// SQLite backend.
//
// Threads. sqlite3 calls block (disk I/O, busy waits on other processes' locks), so none
// runs on a caller's I/O thread. One thread owns the writer connection; a pool of
// `sqlite_readers` threads shares as many read-only connections (WAL lets them read while
// the writer writes). Coroutines hop there with RunOn() and come back to their executor.
//
// Routing. A plain Execute() whose text starts with SELECT or WITH goes to a reader;
// if sqlite3_stmt_readonly() then says it writes (WITH ... INSERT), it is sent to the
// writer instead. Everything else goes to the writer.
//
// Writer ownership. The writer connection is one session, so statements of an open
// transaction must not interleave with anyone else's. An AsyncSemaphore with one permit
// guards it: Begin() holds the permit until Commit() or until the rollback that runs when
// the Transaction is destroyed; a plain write holds it for one statement. A coroutine that
// holds a Transaction and calls Database::Execute() for a write would wait for itself; it
// gets kUnavailable after connect_timeout.
//
// An in-memory database (sqlite::memory:, for tests) cannot be shared between
// connections, so it has no readers and everything runs on the writer.
#include "store/sqlite_database.hpp"

#include <atomic>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <sqlite3.h>

#include "core/log.hpp"
#include "core/run_on.hpp"
#include "core/thread_name.hpp"
#include "core/time.hpp"
#include "store/async_semaphore.hpp"
#include "store/migrations.hpp"

namespace chatd::store {

namespace {

constexpr std::size_t kStatementCacheSize = 64;

constexpr std::string_view kCreateSchemaMigrations =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";
constexpr std::string_view kSelectMigration = "SELECT version FROM schema_migrations WHERE version = $1";
constexpr std::string_view kInsertMigration =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";

// Maps an SQLite failure to chatd's vocabulary. The caller-visible message is generic; the
// SQL and SQLite's own message (which may quote values) go to the log.
Error SqliteError(sqlite3* db, std::string_view sql) {
  const int code = sqlite3_extended_errcode(db);
  const char* detail = sqlite3_errmsg(db);
  Error error;
  switch (code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      error = {ErrorCode::kConflict, "record already exists"};
      break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_CHECK:
      error = {ErrorCode::kInvalidArgument, "value violates a database constraint"};
      break;
    default:
      if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
        error = {ErrorCode::kUnavailable, "database busy"};
      } else {
        error = {ErrorCode::kInternal, "database error"};
      }
  }
  if (error.code == ErrorCode::kConflict || error.code == ErrorCode::kInvalidArgument) {
    log::Debug(fmt::format("sqlite: {} (code {}) in: {}", detail, code, sql));
  } else {
    log::Error(fmt::format("sqlite: {} (code {}) in: {}", detail, code, sql));
  }
  return error;
}

Unexpected InternalError(std::string_view what, std::string_view sql) {
  log::Error(fmt::format("sqlite: {} in: {}", what, sql));
  return MakeError(ErrorCode::kInternal, "database error");
}

bool StartsWithKeyword(std::string_view sql, std::string_view keyword) {
  std::size_t i = 0;
  while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\n' || sql[i] == '\t' || sql[i] == '\r' || sql[i] == '(')) {
    ++i;
  }
  if (sql.size() - i < keyword.size()) return false;
  for (std::size_t k = 0; k < keyword.size(); ++k) {
    if (std::toupper(static_cast<unsigned char>(sql[i + k])) != keyword[k]) return false;
  }
  const std::size_t after = i + keyword.size();
  return after == sql.size() || !std::isalnum(static_cast<unsigned char>(sql[after]));
}

bool LooksReadOnly(std::string_view sql) { return StartsWithKeyword(sql, "SELECT") || StartsWithKeyword(sql, "WITH"); }

bool OnlyWhitespace(const char* text) {
  for (; *text != '\0'; ++text) {
    if (!std::isspace(static_cast<unsigned char>(*text)) && *text != ';') return false;
  }
  return true;
}

// One sqlite3 connection with its prepared-statement cache. Not thread-safe: it is used
// by one thread at a time (the writer thread, or the reader thread that took it).
class SqliteConnection {
 public:
  static Expected<std::unique_ptr<SqliteConnection>> Open(const std::string& path, bool read_only,
                                                          const DatabaseConfig& config) {
    sqlite3* db = nullptr;
    const int flags =
        (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    auto connection = std::unique_ptr<SqliteConnection>(new SqliteConnection(db));
    if (rc != SQLITE_OK) {
      log::Error(fmt::format("sqlite: cannot open {}: {}", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
      return MakeError(ErrorCode::kUnavailable, "cannot open the SQLite database");
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(config.connect_timeout.count()));
    std::string pragmas = "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
    if (!read_only && path != ":memory:") pragmas += "PRAGMA journal_mode = WAL;";
    if (auto ok = connection->Exec(pragmas); !ok) return Unexpected{std::move(ok).error()};
    return connection;
  }

  ~SqliteConnection() {
    for (auto& entry : cache_) sqlite3_finalize(entry.stmt);
    sqlite3_close_v2(db_);
  }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  sqlite3* handle() { return db_; }

  /// Runs statements without parameters or results (BEGIN, COMMIT, migrations).
  Expected<void> Exec(std::string_view sql) {
    const std::string text(sql);
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      return Unexpected{SqliteError(db_, sql)};
    }
    return {};
  }

  /// Runs one statement. With `reader`, a statement that would write is not run and the
  /// answer is nullopt (the caller sends it to the writer).
  std::optional<Expected<Result>> Run(std::string_view sql, const Params& params, bool reader) {
    auto prepared = Prepare(sql);
    if (!prepared) return Expected<Result>(Unexpected{std::move(prepared).error()});
    const CacheEntry& statement = **prepared;
    sqlite3_stmt* stmt = statement.stmt;
    const bool read_only = sqlite3_stmt_readonly(stmt) != 0;
    if (reader && !read_only) return std::nullopt;
    // Leave the cached statement clean for its next use whatever happens below.
    struct Reset {
      sqlite3_stmt* stmt;
      ~Reset() {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
      }
    } reset{stmt};
    if (auto bound = Bind(statement, params); !bound) {
      return Expected<Result>(Unexpected{std::move(bound).error()});
    }
    Result result;
    const int columns = sqlite3_column_count(stmt);
    result.columns.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) result.columns.emplace_back(sqlite3_column_name(stmt, c));
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return Expected<Result>(Unexpected{SqliteError(db_, sql)});
      auto& row = result.rows.emplace_back();
      row.reserve(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) row.push_back(Cell(stmt, c));
    }
    result.affected_rows = read_only ? 0 : sqlite3_changes64(db_);
    return Expected<Result>(std::move(result));
  }

 private:
  struct CacheEntry {
    std::string sql;
    sqlite3_stmt* stmt;
    // slots[i]: the parameter ("$<n>", as a 0-based n - 1) that SQLite's slot i + 1 takes.
    // Resolved once per statement: sqlite3_bind_parameter_index is a linear scan with
    // strncmp, so binding by name costs O(parameters²) — for a 1 300-parameter batch
    // insert that was a fifth of the gateway's CPU.
    std::vector<std::size_t> slots;
  };

  explicit SqliteConnection(sqlite3* db) : db_(db) {}

  // A cached statement, or a newly prepared one. The cache is a small LRU.
  Expected<const CacheEntry*> Prepare(std::string_view sql) {
    if (auto it = index_.find(sql); it != index_.end()) {
      cache_.splice(cache_.begin(), cache_, it->second);
      return &*it->second;
    }
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, &tail) !=
        SQLITE_OK) {
      return Unexpected{SqliteError(db_, sql)};
    }
    if (stmt == nullptr) return InternalError("empty statement", sql);
    // prepare compiles the first statement only; refuse to silently drop the rest.
    if (tail != nullptr && !OnlyWhitespace(std::string(tail, sql.data() + sql.size()).c_str())) {
      sqlite3_finalize(stmt);
      return InternalError("more than one statement", sql);
    }
    if (cache_.size() >= kStatementCacheSize) {
      index_.erase(cache_.back().sql);
      sqlite3_finalize(cache_.back().stmt);
      cache_.pop_back();
    }
    auto slots = ParameterSlots(stmt, sql);
    if (!slots) {
      sqlite3_finalize(stmt);
      return Unexpected{std::move(slots).error()};
    }
    cache_.push_front(CacheEntry{std::string(sql), stmt, std::move(*slots)});
    index_.emplace(cache_.front().sql, cache_.begin());
    return &cache_.front();
  }

  // Which parameter each of the statement's slots takes. A placeholder is "$<n>" with n
  // from 1 (SQLite gives a name used twice one slot) or "?", the value at its position.
  static Expected<std::vector<std::size_t>> ParameterSlots(sqlite3_stmt* stmt, std::string_view sql) {
    const int count = sqlite3_bind_parameter_count(stmt);
    std::vector<std::size_t> slots;
    slots.reserve(static_cast<std::size_t>(count));
    for (int slot = 1; slot <= count; ++slot) {
      const char* name = sqlite3_bind_parameter_name(stmt, slot);
      if (name == nullptr) {  // "?": the value at its position
        slots.push_back(static_cast<std::size_t>(slot - 1));
        continue;
      }
      std::size_t number = 0;
      const std::string_view text(name);
      const char* end = text.data() + text.size();
      if (text.size() < 2 || text[0] != '$' || std::from_chars(text.data() + 1, end, number).ptr != end || number == 0) {
        return InternalError(fmt::format("placeholder {} is not $<n>", name), sql);
      }
      slots.push_back(number - 1);
    }
    return slots;
  }

  // Binds params[n - 1] to "$<n>" wherever that name appears, so order does not matter.
  Expected<void> Bind(const CacheEntry& statement, const Params& params) {
    sqlite3_stmt* stmt = statement.stmt;
    if (statement.slots.size() != params.size()) {
      return InternalError(fmt::format("statement takes {} parameters, {} given", statement.slots.size(), params.size()),
                           statement.sql);
    }
    for (std::size_t i = 0; i < statement.slots.size(); ++i) {
      const std::size_t param = statement.slots[i];
      if (param >= params.size()) return InternalError(fmt::format("no value for ${}", param + 1), statement.sql);
      const int index = static_cast<int>(i + 1);
      const int rc = std::visit(
          [&](const auto& value) {
            using T = std::decay_t<decltype(value)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) {
              return sqlite3_bind_null(stmt, index);
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
              return sqlite3_bind_int64(stmt, index, value);
            } else if constexpr (std::is_same_v<T, double>) {
              return sqlite3_bind_double(stmt, index, value);
            } else {
              // Not copied (SQLITE_STATIC): `params` outlives the statement's run, and Run's
              // Reset clears the bindings before it returns.
              return sqlite3_bind_text64(stmt, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
            }
          },
          params[param]);
      if (rc != SQLITE_OK) return Unexpected{SqliteError(db_, statement.sql)};
    }
    return {};
  }

  static std::optional<std::string> Cell(sqlite3_stmt* stmt, int column) {
    switch (sqlite3_column_type(stmt, column)) {
      case SQLITE_NULL:
        return std::nullopt;
      case SQLITE_INTEGER:
        return std::to_string(sqlite3_column_int64(stmt, column));
      case SQLITE_FLOAT:
        return fmt::format("{}", sqlite3_column_double(stmt, column));
      case SQLITE_BLOB: {
        const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, column));
        return std::string(data ? data : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
      }
      default: {
        const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
        return std::string(data ? data : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
      }
    }
  }

  sqlite3* db_;
  std::list<CacheEntry> cache_;  // most recently used first
  std::unordered_map<std::string_view, std::list<CacheEntry>::iterator> index_;
};

class SqliteDatabase;

class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(SqliteDatabase& db, Permit permit) : db_(db), permit_(std::move(permit)) {}
  ~SqliteTransaction() override;

  Task<Expected<Result>> Execute(std::string_view sql, Params params) override;
  Task<Expected<void>> Commit() override;

 private:
  SqliteDatabase& db_;
  Permit permit_;  // the writer; empty once committed
};

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(DatabaseConfig config, std::unique_ptr<SqliteConnection> writer,
                 std::vector<std::unique_ptr<SqliteConnection>> readers)
      : config_(std::move(config)),
        reader_count_(readers.size()),
        writer_(std::move(writer)),
        idle_readers_(std::move(readers)),
        reader_threads_(std::max<std::size_t>(reader_count_, 1)) {
    OnEveryThread(writer_thread_, 1, [] { NameThisThread("chatd-db-write"); });
    OnEveryThread(reader_threads_, std::max<std::size_t>(reader_count_, 1), [] { NameThisThread("chatd-db-read"); });
  }

  ~SqliteDatabase() override { Close(); }

  Dialect dialect() const override { return Dialect::kSqlite; }

  /// Runs on a reader thread (SELECT/WITH) or on the writer thread; resumes on the
  /// caller's executor.
  Task<Expected<Result>> Execute(std::string_view sql, Params params) override {
    if (closed_) co_return Closed();
    if (reader_count_ > 0 && LooksReadOnly(sql)) {
      ++active_readers_;
      auto result = co_await RunOn(reader_threads_.get_executor(), [&] {
        auto reader = TakeReader();
        auto answer = reader->Run(sql, params, /*reader=*/true);
        GiveBackReader(std::move(reader));
        return answer;
      });
      --active_readers_;
      if (result) co_return std::move(*result);
    }
    if (!co_await writer_lock_.Acquire(config_.connect_timeout)) co_return WriterUnavailable();
    Permit permit(writer_lock_);
    co_return co_await RunOnWriter(sql, params);
  }

  /// Takes the writer (waiting FIFO up to connect_timeout) and runs BEGIN IMMEDIATE.
  Task<Expected<std::unique_ptr<Transaction>>> Begin() override {
    if (closed_) co_return Closed();
    if (!co_await writer_lock_.Acquire(config_.connect_timeout)) co_return WriterUnavailable();
    Permit permit(writer_lock_);
    auto begun = co_await RunOn(writer_thread_.get_executor(), [this] { return writer_->Exec("BEGIN IMMEDIATE"); });
    if (!begun) co_return Unexpected{std::move(begun).error()};
    co_return std::unique_ptr<Transaction>(new SqliteTransaction(*this, std::move(permit)));
  }

  /// The whole batch in one hop to the writer thread: a transaction that does not wait
  /// for a busy I/O thread between its statements, so it holds the writer briefly.
  Task<Expected<std::vector<std::int64_t>>> ExecuteBatch(std::string_view sql, std::vector<Params> rows) override {
    std::vector<std::int64_t> affected;
    if (rows.empty()) co_return affected;
    affected.reserve(rows.size());
    auto written = co_await InWriterTransaction([&]() -> Expected<bool> {
      for (const Params& params : rows) {
        auto result = *writer_->Run(sql, params, /*reader=*/false);
        if (!result) return Unexpected{std::move(result).error()};
        affected.push_back(result->affected_rows);
      }
      return true;
    });
    if (!written) co_return Unexpected{std::move(written).error()};
    co_return affected;
  }

  Task<Expected<bool>> ExecuteAll(std::vector<Statement> statements) override {
    co_return co_await InWriterTransaction([&]() -> Expected<bool> {
      for (const Statement& statement : statements) {
        auto result = *writer_->Run(statement.sql, statement.params, /*reader=*/false);
        if (!result) return Unexpected{std::move(result).error()};
        if (statement.must_change && result->affected_rows == 0) return false;
      }
      return true;
    });
  }

  Task<Expected<void>> Ping() override {
    auto result = co_await Execute("SELECT 1", {});
    if (!result) co_return Unexpected{std::move(result).error()};
    co_return Expected<void>();
  }

  /// Each pending migration in its own BEGIN IMMEDIATE transaction on the writer thread.
  /// Another process migrating the same file makes BEGIN IMMEDIATE wait (busy_timeout,
  /// raised to statement_timeout meanwhile); the applied set is re-read inside each
  /// transaction, so nothing is applied twice.
  Task<Expected<int>> Migrate() override {
    if (closed_) co_return Closed();
    if (!co_await writer_lock_.Acquire(config_.connect_timeout)) co_return WriterUnavailable();
    Permit permit(writer_lock_);
    co_return co_await RunOn(writer_thread_.get_executor(), [this] { return MigrateOnWriter(); });
  }

  /// Lets queued work finish, then closes every connection. Later calls fail kUnavailable.
  void Close() override {
    if (closed_.exchange(true)) return;
    writer_lock_.Close();
    writer_thread_.join();
    reader_threads_.join();
    std::lock_guard lock(readers_mutex_);
    idle_readers_.clear();
    writer_.reset();
  }

  PoolStats Stats() const override { return {1 + reader_count_, writer_lock_.in_use() + active_readers_.load()}; }

  /// Takes the writer and runs `body` (Expected<bool>() on the writer thread) between
  /// BEGIN IMMEDIATE and COMMIT, in one hop; an error or false from it rolls back.
  template <typename Body>
  Task<Expected<bool>> InWriterTransaction(Body body) {
    if (closed_) co_return Closed();
    if (!co_await writer_lock_.Acquire(config_.connect_timeout)) co_return WriterUnavailable();
    Permit permit(writer_lock_);
    co_return co_await RunOn(writer_thread_.get_executor(), [&]() -> Expected<bool> {
      if (auto begun = writer_->Exec("BEGIN IMMEDIATE"); !begun) return Unexpected{std::move(begun).error()};
      auto done = body();
      if (done && *done) {
        auto committed = writer_->Exec("COMMIT");
        if (committed) return true;
        done = Unexpected{std::move(committed).error()};
      }
      if (!writer_->Exec("ROLLBACK")) log::Error("sqlite: rollback failed");
      return done;
    });
  }

  // For SqliteTransaction: the caller holds the writer permit.
  Task<Expected<Result>> RunOnWriter(std::string_view sql, const Params& params) {
    if (closed_) co_return Closed();
    co_return co_await RunOn(writer_thread_.get_executor(),
                             [&] { return *writer_->Run(sql, params, /*reader=*/false); });
  }

  Task<Expected<void>> CommitOnWriter() {
    if (closed_) co_return Closed();
    co_return co_await RunOn(writer_thread_.get_executor(), [this] { return writer_->Exec("COMMIT"); });
  }

  // For ~SqliteTransaction: roll back on the writer thread, then free the writer. Queued
  // behind any statement of the transaction still running, so ordering is kept.
  void RollbackAndRelease(Permit permit) {
    asio::post(writer_thread_, [this, permit = std::move(permit)]() mutable {
      if (writer_ && !sqlite3_get_autocommit(writer_->handle())) {
        if (!writer_->Exec("ROLLBACK")) log::Error("sqlite: rollback failed");
      }
      permit.Reset();
    });
  }

 private:
  static Unexpected Closed() { return MakeError(ErrorCode::kUnavailable, "database closed"); }
  Unexpected WriterUnavailable() const {
    if (closed_) return Closed();
    log::Warn("sqlite: timed out waiting for the writer connection");
    return MakeError(ErrorCode::kUnavailable, "database busy");
  }

  std::unique_ptr<SqliteConnection> TakeReader() {
    std::lock_guard lock(readers_mutex_);
    // As many readers as reader threads, so one is always free here.
    auto reader = std::move(idle_readers_.back());
    idle_readers_.pop_back();
    return reader;
  }
  void GiveBackReader(std::unique_ptr<SqliteConnection> reader) {
    std::lock_guard lock(readers_mutex_);
    idle_readers_.push_back(std::move(reader));
  }

  Expected<int> MigrateOnWriter() {
    sqlite3_busy_timeout(writer_->handle(), static_cast<int>(config_.statement_timeout.count()));
    struct RestoreBusyTimeout {
      sqlite3* db;
      int ms;
      ~RestoreBusyTimeout() { sqlite3_busy_timeout(db, ms); }
    } restore{writer_->handle(), static_cast<int>(config_.connect_timeout.count())};

    int applied = 0;
    for (const Migration& migration : SqliteMigrations()) {
      if (auto ok = writer_->Exec("BEGIN IMMEDIATE"); !ok) return Unexpected{std::move(ok).error()};
      auto step = [&]() -> Expected<bool> {
        if (auto ok = writer_->Exec(kCreateSchemaMigrations); !ok) return Unexpected{std::move(ok).error()};
        auto present = *writer_->Run(kSelectMigration, {std::int64_t{migration.version}}, false);
        if (!present) return Unexpected{std::move(present).error()};
        if (!present->empty()) return false;
        if (auto ok = writer_->Exec(migration.sql); !ok) return Unexpected{std::move(ok).error()};
        auto recorded = *writer_->Run(kInsertMigration,
                                      {std::int64_t{migration.version}, std::string(migration.name),
                                       FormatRfc3339(std::chrono::system_clock::now())},
                                      false);
        if (!recorded) return Unexpected{std::move(recorded).error()};
        return true;
      }();
      if (!step) {
        if (!writer_->Exec("ROLLBACK")) log::Error("sqlite: rollback failed");
        log::Error(fmt::format("sqlite: migration {} ({}) failed", migration.version, migration.name));
        return MakeError(step.error().code == ErrorCode::kUnavailable ? ErrorCode::kUnavailable : ErrorCode::kInternal,
                         "database migration failed");
      }
      if (auto ok = writer_->Exec("COMMIT"); !ok) {
        if (!writer_->Exec("ROLLBACK")) log::Error("sqlite: rollback failed");
        return Unexpected{std::move(ok).error()};
      }
      if (*step) {
        ++applied;
        log::Info("migration applied", {{"dialect", "sqlite"}, {"version", migration.version}, {"name", migration.name}});
      }
    }
    return applied;
  }

  const DatabaseConfig config_;
  const std::size_t reader_count_;
  AsyncSemaphore writer_lock_{1};
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> active_readers_{0};
  std::unique_ptr<SqliteConnection> writer_;  // used on writer_thread_ only
  std::mutex readers_mutex_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_readers_;
  // Declared last, so destroyed first: work still queued after Close() (a late rollback)
  // is dropped while the semaphore it releases still exists.
  asio::thread_pool writer_thread_{1};
  asio::thread_pool reader_threads_;
};

SqliteTransaction::~SqliteTransaction() {
  if (permit_) db_.RollbackAndRelease(std::move(permit_));
}

Task<Expected<Result>> SqliteTransaction::Execute(std::string_view sql, Params params) {
  if (!permit_) co_return MakeError(ErrorCode::kInternal, "transaction already committed");
  co_return co_await db_.RunOnWriter(sql, params);
}

Task<Expected<void>> SqliteTransaction::Commit() {
  if (!permit_) co_return MakeError(ErrorCode::kInternal, "transaction already committed");
  auto committed = co_await db_.CommitOnWriter();
  // On failure the transaction is still open; the destructor rolls it back.
  if (committed) permit_.Reset();
  co_return committed;
}

}  // namespace

Expected<std::unique_ptr<Database>> OpenSqliteDatabase(const std::string& path, const DatabaseConfig& config) {
  const bool memory = path == ":memory:";
  if (!memory) {
    std::error_code ec;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) {
      log::Error(fmt::format("sqlite: cannot create directory {}: {}", parent.string(), ec.message()));
      return MakeError(ErrorCode::kUnavailable, "cannot create the SQLite database directory");
    }
  }
  // The writer first: it creates the file and switches it to WAL before readers open it.
  auto writer = SqliteConnection::Open(path, /*read_only=*/false, config);
  if (!writer) return Unexpected{std::move(writer).error()};
  std::vector<std::unique_ptr<SqliteConnection>> readers;
  if (!memory) {
    for (std::size_t i = 0; i < config.sqlite_readers; ++i) {
      auto reader = SqliteConnection::Open(path, /*read_only=*/true, config);
      if (!reader) return Unexpected{std::move(reader).error()};
      readers.push_back(std::move(*reader));
    }
  }
  return std::unique_ptr<Database>(new SqliteDatabase(config, std::move(*writer), std::move(readers)));
}

}  // namespace chatd::store
