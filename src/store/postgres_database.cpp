// PostgreSQL backend: a pool of PgConnections.
//
// The pool holds at most pool_size connections, made on demand. A permit from an
// AsyncSemaphore is the right to hold one; callers beyond pool_size wait FIFO for at most
// connect_timeout. An idle connection is checked before reuse (PgConnection::CheckIdle)
// and replaced when the server closed it, so after a server restart the next call simply
// connects again. A connection that failed, timed out, or comes back mid-transaction is
// closed instead of returned.
//
// Everything runs on the calling coroutine's executor (libpq non-blocking); only
// connection start uses the pool's two helper threads (see pg_connection.cpp).
//
// Lifetimes: the pool is shared (shared_ptr) by the Database, every Lease and every
// rollback still running after its Transaction was destroyed, so none outlives it.
#include "store/postgres_database.hpp"

#include <mutex>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <libpq-fe.h>

#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "store/async_semaphore.hpp"
#include "store/migrations.hpp"
#include "store/pg_connection.hpp"

namespace chatd::store {

namespace {

constexpr std::chrono::milliseconds kPingTimeout{2000};
constexpr std::chrono::milliseconds kRollbackTimeout{5000};

// Any constant shared by all chatd processes: "chatd_mg" in ASCII.
constexpr std::string_view kLockMigrations = "SELECT pg_advisory_lock(7163082359860850023)";
constexpr std::string_view kUnlockMigrations = "SELECT pg_advisory_unlock(7163082359860850023)";
constexpr std::string_view kCreateSchemaMigrations =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)";
constexpr std::string_view kSelectMigrations = "SELECT version FROM schema_migrations";
constexpr std::string_view kInsertMigration =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())";

Unexpected Closed() { return MakeError(ErrorCode::kUnavailable, "database closed"); }

class PgPool : public std::enable_shared_from_this<PgPool> {
 public:
  /// A checked-out connection (or, briefly while connecting, just the permit). Going out
  /// of scope returns the connection to the pool, or closes it when it is not reusable.
  class Lease {
   public:
    explicit Lease(std::shared_ptr<PgPool> pool) : pool_(std::move(pool)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_) pool_->Return(std::move(connection_));
    }
    PgConnection* operator->() const { return connection_.get(); }
    PgConnection& operator*() const { return *connection_; }

   private:
    friend class PgPool;
    std::shared_ptr<PgPool> pool_;
    std::unique_ptr<PgConnection> connection_;
  };

  explicit PgPool(DatabaseConfig config) : config_(std::move(config)), slots_(config_.pool_size) {
    OnEveryThread(helper_, kHelperThreads, [] { NameThisThread("chatd-pg"); });
  }
  ~PgPool() { Close(); }

  const DatabaseConfig& config() const { return config_; }

  /// A healthy connection, waiting FIFO for a free slot and connecting if no idle one is
  /// left, all before `deadline` (and connect_timeout). Runs on the caller's executor.
  Task<Expected<Lease>> Acquire(Deadline deadline) {
    if (IsClosed()) co_return Closed();
    const auto wait =
        std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()),
                 std::chrono::milliseconds(0));
    if (!co_await slots_.Acquire(wait)) {
      if (IsClosed()) co_return Closed();
      log::Warn(fmt::format("postgres: no free connection within {} ms (pool size {})", wait.count(), config_.pool_size));
      co_return MakeError(ErrorCode::kUnavailable, "database busy");
    }
    Lease lease(shared_from_this());
    while (auto idle = TakeIdle()) {
      if (idle->CheckIdle()) {
        lease.connection_ = std::move(idle);
        co_return std::move(lease);
      }
      log::Info("postgres: dropping a dead pooled connection");
    }
    auto connected = co_await PgConnection::Connect(
        config_.url, std::min(deadline, DeadlineAfter(config_.connect_timeout)), helper_.get_executor());
    if (!connected) co_return Unexpected{std::move(connected).error()};
    lease.connection_ = std::move(*connected);
    co_return std::move(lease);
  }

  /// Closes idle connections and fails waiters; leased ones close when returned.
  void Close() {
    std::vector<std::unique_ptr<PgConnection>> idle;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      idle.swap(idle_);
    }
    slots_.Close();
  }

  PoolStats Stats() const { return {config_.pool_size, slots_.in_use()}; }

 private:
  bool IsClosed() {
    std::lock_guard lock(mutex_);
    return closed_;
  }

  std::unique_ptr<PgConnection> TakeIdle() {
    std::lock_guard lock(mutex_);
    if (idle_.empty()) return nullptr;
    auto connection = std::move(idle_.back());  // most recently used: likeliest alive
    idle_.pop_back();
    return connection;
  }

  void Return(std::unique_ptr<PgConnection> connection) {
    if (connection && connection->Reusable()) {
      std::lock_guard lock(mutex_);
      if (!closed_) idle_.push_back(std::move(connection));
    }
    connection.reset();  // closes it unless it went back to idle_
    slots_.Release();
  }

  const DatabaseConfig config_;
  AsyncSemaphore slots_;
  std::mutex mutex_;
  bool closed_ = false;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  static constexpr std::size_t kHelperThreads = 2;
  asio::thread_pool helper_{kHelperThreads};  // PQconnectStartParams; last member: joined first
};

using Lease = PgPool::Lease;

// Rolls back a transaction that was dropped without Commit, then lets the lease return
// the connection (or close it if the rollback failed).
Task<void> RollbackAndReturn(Lease lease) {
  if (lease->broken()) co_return;
  auto rolled_back = co_await lease->Query("ROLLBACK", {}, DeadlineAfter(kRollbackTimeout));
  if (!rolled_back) lease->MarkBroken();
}

class PgTransaction final : public Transaction {
 public:
  PgTransaction(Lease lease, asio::any_io_executor executor, std::chrono::milliseconds timeout)
      : lease_(std::move(lease)), executor_(std::move(executor)), timeout_(timeout) {}

  /// Rolls back asynchronously on the executor that began the transaction.
  ~PgTransaction() override {
    if (lease_) asio::co_spawn(executor_, RollbackAndReturn(std::move(*lease_)), asio::detached);
  }

  Task<Expected<Result>> Execute(std::string_view sql, Params params) override {
    if (!lease_) co_return MakeError(ErrorCode::kInternal, "transaction already finished");
    co_return co_await (*lease_)->Query(sql, params, DeadlineAfter(timeout_));
  }

  Task<Expected<void>> Commit() override {
    if (!lease_) co_return MakeError(ErrorCode::kInternal, "transaction already finished");
    // PostgreSQL would answer COMMIT of a failed transaction with a silent ROLLBACK.
    if ((*lease_)->InFailedTransaction()) {
      co_return MakeError(ErrorCode::kInternal, "transaction failed earlier; rolled back");
    }
    auto committed = co_await (*lease_)->Query("COMMIT", {}, DeadlineAfter(timeout_));
    lease_.reset();  // the transaction is over either way
    if (!committed) co_return Unexpected{std::move(committed).error()};
    co_return Expected<void>();
  }

 private:
  std::optional<Lease> lease_;  // empty once finished
  asio::any_io_executor executor_;
  std::chrono::milliseconds timeout_;
};

class PostgresDatabase final : public Database {
 public:
  explicit PostgresDatabase(DatabaseConfig config) : pool_(std::make_shared<PgPool>(std::move(config))) {}
  ~PostgresDatabase() override { Close(); }

  Dialect dialect() const override { return Dialect::kPostgres; }

  /// Autocommit statement on a pooled connection; runs on the caller's executor.
  Task<Expected<Result>> Execute(std::string_view sql, Params params) override {
    auto lease = co_await pool_->Acquire(DeadlineAfter(config().connect_timeout));
    if (!lease) co_return Unexpected{std::move(lease).error()};
    co_return co_await (*lease)->Query(sql, params, DeadlineAfter(config().statement_timeout));
  }

  /// Holds one pooled connection until Commit() or the rollback after destruction.
  Task<Expected<std::unique_ptr<Transaction>>> Begin() override {
    auto lease = co_await pool_->Acquire(DeadlineAfter(config().connect_timeout));
    if (!lease) co_return Unexpected{std::move(lease).error()};
    auto begun = co_await (*lease)->Query("BEGIN", {}, DeadlineAfter(config().statement_timeout));
    if (!begun) co_return Unexpected{std::move(begun).error()};
    auto executor = co_await asio::this_coro::executor;
    co_return std::unique_ptr<Transaction>(new PgTransaction(std::move(*lease), executor, config().statement_timeout));
  }

  /// SELECT 1 within kPingTimeout, including the wait for a connection.
  Task<Expected<void>> Ping() override {
    const Deadline deadline = DeadlineAfter(kPingTimeout);
    auto lease = co_await pool_->Acquire(deadline);
    if (!lease) co_return Unexpected{std::move(lease).error()};
    auto result = co_await (*lease)->Query("SELECT 1", {}, deadline);
    if (!result) co_return Unexpected{std::move(result).error()};
    co_return Expected<void>();
  }

  /// Holds pg_advisory_lock on one connection while it reads what is applied and applies
  /// the rest, each migration in its own transaction. A second process blocks on the lock
  /// (up to statement_timeout), then finds nothing left to do.
  Task<Expected<int>> Migrate() override {
    auto lease = co_await pool_->Acquire(DeadlineAfter(config().connect_timeout));
    if (!lease) co_return Unexpected{std::move(lease).error()};
    PgConnection& connection = **lease;
    auto locked = co_await connection.Query(kLockMigrations, {}, StatementDeadline());
    if (!locked) co_return Unexpected{std::move(locked).error()};
    auto applied = co_await ApplyMigrations(connection);
    if (!connection.broken()) {
      // If unlocking fails, closing the session releases the lock.
      auto unlocked = co_await connection.Query(kUnlockMigrations, {}, StatementDeadline());
      if (!unlocked) connection.MarkBroken();
    }
    co_return applied;
  }

  void Close() override { pool_->Close(); }

  PoolStats Stats() const override { return pool_->Stats(); }

 private:
  const DatabaseConfig& config() const { return pool_->config(); }
  Deadline StatementDeadline() const { return DeadlineAfter(config().statement_timeout); }

  Task<Expected<int>> ApplyMigrations(PgConnection& connection) {
    if (auto created = co_await connection.Script(kCreateSchemaMigrations, StatementDeadline()); !created) {
      co_return Unexpected{std::move(created).error()};
    }
    auto rows = co_await connection.Query(kSelectMigrations, {}, StatementDeadline());
    if (!rows) co_return Unexpected{std::move(rows).error()};
    std::set<std::int64_t> done;
    for (std::size_t i = 0; i < rows->size(); ++i) done.insert(rows->Int(i, "version"));

    int applied = 0;
    for (const Migration& migration : PostgresMigrations()) {
      if (done.contains(migration.version)) continue;
      auto step = co_await connection.Query("BEGIN", {}, StatementDeadline());
      if (step) {
        auto ran = co_await connection.Script(migration.sql, StatementDeadline());
        if (!ran) step = Unexpected{std::move(ran).error()};
      }
      if (step) {
        // A named Params: g++ 12 miscompiles a braced list inside a co_await expression.
        const Params record{std::int64_t{migration.version}, std::string(migration.name)};
        step = co_await connection.Query(kInsertMigration, record, StatementDeadline());
      }
      if (step) step = co_await connection.Query("COMMIT", {}, StatementDeadline());
      if (!step) {
        if (!connection.broken()) {
          auto rolled_back = co_await connection.Query("ROLLBACK", {}, StatementDeadline());
          if (!rolled_back) connection.MarkBroken();
        }
        log::Error(fmt::format("postgres: migration {} ({}) failed", migration.version, migration.name));
        co_return MakeError(
            step.error().code == ErrorCode::kUnavailable ? ErrorCode::kUnavailable : ErrorCode::kInternal,
            "database migration failed");
      }
      ++applied;
      log::Info("migration applied", {{"dialect", "postgresql"}, {"version", migration.version}, {"name", migration.name}});
    }
    co_return applied;
  }

  std::shared_ptr<PgPool> pool_;
};

}  // namespace

Expected<std::unique_ptr<Database>> OpenPostgresDatabase(const DatabaseConfig& config) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(config.url.c_str(), &error);
  if (parsed == nullptr) {
    std::string reason = error ? error : "out of memory";
    if (error) PQfreemem(error);
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
    return MakeError(ErrorCode::kInvalidArgument, "invalid PostgreSQL URL: " + reason);
  }
  PQconninfoFree(parsed);
  return std::unique_ptr<Database>(new PostgresDatabase(config));
}

}  // namespace chatd::store
