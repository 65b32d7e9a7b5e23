// One suite for the Database interface, run against every backend:
//   sqlite_memory — sqlite::memory: (writer only);
//   sqlite_file   — a temporary file (writer + readers, WAL);
//   postgres      — when CHATD_TEST_DATABASE_URL is set; each test gets its own schema
//                   (search_path), dropped afterwards.
// Optional: CHATD_TEST_PG_CTL + CHATD_TEST_RESTART_DATABASE_URL, a private server and a shell
// command that takes "stop" or "start" as its last
// argument and stops/starts that PostgreSQL server, enables the restart test.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <regex>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/migrations.hpp"
#include "store/open.hpp"

namespace chatd::store {
namespace {

using namespace std::chrono_literals;

enum class Backend { kSqliteMemory, kSqliteFile, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kSqliteMemory:
      return "sqlite_memory";
    case Backend::kSqliteFile:
      return "sqlite_file";
    case Backend::kPostgres:
      return "postgres";
  }
  return "unknown";
}

std::string RandomSuffix() {
  std::random_device device;
  return std::to_string(std::uniform_int_distribution<std::uint64_t>(1, 1'000'000'000'000)(device));
}

// The base URL with search_path pointed at `schema`, keeping any query string.
std::string WithSearchPath(const std::string& url, const std::string& schema) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema;
}

TEST(MigrationsTest, BothDialectsListTheSameVersionsInOrder) {
  const auto sqlite = SqliteMigrations();
  const auto postgres = PostgresMigrations();
  ASSERT_EQ(sqlite.size(), postgres.size());
  for (std::size_t i = 0; i < sqlite.size(); ++i) {
    EXPECT_EQ(sqlite[i].version, static_cast<int>(i) + 1);
    EXPECT_EQ(postgres[i].version, sqlite[i].version);
    EXPECT_EQ(postgres[i].name, sqlite[i].name);
  }
}

class DatabaseTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Backend::kSqliteMemory:
        config_.url = "sqlite::memory:";
        break;
      case Backend::kSqliteFile:
        dir_ = std::filesystem::temp_directory_path() / ("chatd_store_test_" + RandomSuffix());
        std::filesystem::create_directories(dir_);
        config_.url = "sqlite://" + (dir_ / "test.db").string();
        break;
      case Backend::kPostgres: {
        const char* url = std::getenv("CHATD_TEST_DATABASE_URL");
        if (url == nullptr || *url == '\0') {
          GTEST_SKIP() << "PostgreSQL variant skipped: set CHATD_TEST_DATABASE_URL="
                          "postgresql://user@127.0.0.1:port/db to run it";
        }
        DatabaseConfig admin_config;
        admin_config.url = url;
        admin_ = Open(admin_config);
        schema_ = "chatd_test_" + RandomSuffix();
        auto created = Await(admin_->Execute("CREATE SCHEMA " + schema_));
        ASSERT_TRUE(created) << created.error().message;
        config_.url = WithSearchPath(url, schema_);
        break;
      }
    }
    db_ = Open(config_);
  }

  void TearDown() override {
    Drain();
    if (db_) db_->Close();
    db_.reset();
    if (admin_) {
      auto dropped = Await(admin_->Execute("DROP SCHEMA " + schema_ + " CASCADE"));
      EXPECT_TRUE(dropped) << dropped.error().message;
      admin_->Close();
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Database> Open(const DatabaseConfig& config) {
    auto db = OpenDatabase(config);
    EXPECT_TRUE(db) << db.error().message;
    return db ? std::move(*db) : nullptr;
  }

  /// Reopens db_ with a changed config (same database).
  template <typename F>
  void Reopen(F change) {
    Drain();
    db_->Close();
    change(config_);
    db_ = Open(config_);
  }

  /// Runs `task` to completion on the test's io_context. The io_context outlives every
  /// Transaction (a PostgreSQL rollback runs on the executor that began it).
  template <typename T>
  T Await(Task<T> task) {
    std::optional<T> result;
    std::exception_ptr failure;
    asio::co_spawn(
        io_, [&]() -> Task<void> { result.emplace(co_await std::move(task)); },
        [&](std::exception_ptr error) { failure = error; });
    io_.restart();
    io_.run();
    if (failure) std::rethrow_exception(failure);
    return std::move(*result);
  }

  /// Runs work still queued on the io_context (rollbacks of dropped transactions).
  void Drain() {
    io_.restart();
    io_.run();
  }

  /// Runs the io_context until `done()` holds, for at most two seconds.
  template <typename F>
  bool PollUntil(F done) {
    for (auto deadline = std::chrono::steady_clock::now() + 2s; !done();) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      Drain();
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  Result Exec(std::string_view sql, Params params = {}) {
    auto result = Await(db_->Execute(sql, std::move(params)));
    EXPECT_TRUE(result) << sql << ": " << result.error().message;
    return result ? std::move(*result) : Result{};
  }

  std::int64_t Count(std::string_view table) {
    return Exec("SELECT COUNT(*) AS n FROM " + std::string(table)).Int(0, "n");
  }

  bool IsPostgres() const { return GetParam() == Backend::kPostgres; }
  std::size_t MigrationCount() const { return IsPostgres() ? PostgresMigrations().size() : SqliteMigrations().size(); }

  asio::io_context io_;
  DatabaseConfig config_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Database> admin_;
  std::string schema_;
  std::filesystem::path dir_;
};

constexpr std::string_view kCreateItems =
    "CREATE TABLE items (id TEXT PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, s TEXT, n TEXT)";

TEST_P(DatabaseTest, DialectMatchesBackend) {
  EXPECT_EQ(db_->dialect(), IsPostgres() ? Dialect::kPostgres : Dialect::kSqlite);
}

TEST_P(DatabaseTest, RoundTripsEveryParamType) {
  Exec(kCreateItems);
  const std::string text = "it's \"quoted\"\nand ünïcødé ✓";
  Result inserted = Exec("INSERT INTO items (id, i, d, s, n) VALUES ($1, $2, $3, $4, $5)",
                         {std::string("a"), std::int64_t{9223372036854775807}, 1.5, text, nullptr});
  EXPECT_EQ(inserted.affected_rows, 1);
  Exec("INSERT INTO items (id, i, d, s, n) VALUES ($1, $2, $3, $4, $5)",
       {std::string("b"), std::int64_t{-42}, 0.1, std::string(), std::string("x")});

  Result rows = Exec("SELECT id, i, d, s, n FROM items ORDER BY id");
  EXPECT_EQ(rows.columns, (std::vector<std::string>{"id", "i", "d", "s", "n"}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows.Text(0, "id"), "a");
  EXPECT_EQ(rows.Int(0, "i"), std::int64_t{9223372036854775807});
  EXPECT_EQ(rows.Text(0, "d"), "1.5");
  EXPECT_EQ(rows.Text(0, "s"), text);
  EXPECT_TRUE(rows.IsNull(0, "n"));
  EXPECT_EQ(rows.Int(1, "i"), -42);
  EXPECT_EQ(rows.Text(1, "d"), "0.1");
  ASSERT_TRUE(rows.Cell(1, "s").has_value());  // empty string is not NULL
  EXPECT_EQ(*rows.Cell(1, "s"), "");
  EXPECT_EQ(rows.Text(1, "n"), "x");

  Result none = Exec("SELECT id, i FROM items WHERE id = $1", {std::string("zzz")});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.columns, (std::vector<std::string>{"id", "i"}));
}

TEST_P(DatabaseTest, PlaceholdersBindByNumberNotPosition) {
  Exec(kCreateItems);
  Exec("INSERT INTO items (s, i, id) VALUES ($3, $2, $1)", {std::string("id1"), std::int64_t{7}, std::string("seven")});
  Result row = Exec("SELECT id, s FROM items WHERE i = $2 AND s = $1 AND (id = $3 OR $3 IS NULL)",
                    {std::string("seven"), std::int64_t{7}, std::string("id1")});
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(row.Text(0, "id"), "id1");
  EXPECT_EQ(row.Text(0, "s"), "seven");
}

// A batch insert of many rows: each "$n" must land in its own column of its own row, also
// when the cached statement runs again with other values.
TEST_P(DatabaseTest, ManyPlaceholdersBindByNumber) {
  Exec(kCreateItems);
  constexpr int kRows = 200;
  for (int round = 0; round < 2; ++round) {
    std::string sql = "INSERT INTO items (id, i) VALUES ";
    Params params;
    for (int row = 0; row < kRows; ++row) {
      sql += fmt::format("{}(${}, ${})", row == 0 ? "" : ", ", 2 * row + 1, 2 * row + 2);
      params.emplace_back(fmt::format("r{}-{}", round, row));
      params.emplace_back(std::int64_t{round * 1000 + row});
    }
    Exec(sql, params);
  }
  Result rows = Exec("SELECT id, i FROM items WHERE id = $1 OR id = $2 ORDER BY i",
                     {std::string("r0-199"), std::string("r1-7")});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows.Int(0, "i"), 199);
  EXPECT_EQ(rows.Int(1, "i"), 1007);
  EXPECT_EQ(Count("items"), 2 * kRows);
}

// SQLite's "?" takes the value at its position: the many-row inserts use it.
TEST_P(DatabaseTest, SqlitePositionalPlaceholders) {
  if (db_->dialect() != Dialect::kSqlite) GTEST_SKIP() << "\"?\" is SQLite's";
  Exec(kCreateItems);
  constexpr int kRows = 300;
  std::string sql = "INSERT INTO items (id, i, s) VALUES ";
  Params params;
  for (int row = 0; row < kRows; ++row) {
    sql += row == 0 ? "(?, ?, ?)" : ", (?, ?, ?)";
    params.emplace_back(fmt::format("r{}", row));
    params.emplace_back(std::int64_t{row});
    params.emplace_back(nullptr);
  }
  Exec(sql, params);
  Result rows = Exec("SELECT id, i, s FROM items WHERE i = ? OR id = ? ORDER BY i", {std::int64_t{7}, std::string("r299")});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows.Text(0, "id"), "r7");
  EXPECT_EQ(rows.Int(1, "i"), 299);
  EXPECT_FALSE(rows.Cell(1, "s").has_value());
  EXPECT_EQ(Count("items"), kRows);
  EXPECT_FALSE(Await(db_->Execute("INSERT INTO items (id, i) VALUES (?, ?)", {std::string("short")})));
}

TEST_P(DatabaseTest, PlaceholderNumbersMustMatchTheParams) {
  Exec(kCreateItems);
  // Two values, but "$3" names a third: an error, not a silently unbound value.
  auto skipped = Await(db_->Execute("INSERT INTO items (id, s) VALUES ($1, $3)", {std::string("a"), std::string("b")}));
  EXPECT_FALSE(skipped);
  EXPECT_EQ(Count("items"), 0);
}

TEST_P(DatabaseTest, UpdateAndDeleteReportAffectedRows) {
  Exec(kCreateItems);
  for (const char* id : {"a", "b", "c"}) {
    Exec("INSERT INTO items (id, i) VALUES ($1, 1)", {std::string(id)});
  }
  EXPECT_EQ(Exec("UPDATE items SET i = i + 1 WHERE id <> $1", {std::string("a")}).affected_rows, 2);
  EXPECT_EQ(Exec("DELETE FROM items").affected_rows, 3);
  EXPECT_EQ(Exec("SELECT id FROM items").affected_rows, 0);
}

TEST_P(DatabaseTest, WithStatementsReadAndWrite) {
  Exec(kCreateItems);
  Exec("WITH src AS (SELECT $1 AS id) INSERT INTO items (id) SELECT id FROM src", {std::string("w")});
  Result read = Exec("WITH x AS (SELECT id FROM items) SELECT COUNT(*) AS n FROM x");
  EXPECT_EQ(read.Int(0, "n"), 1);
}

TEST_P(DatabaseTest, UniqueViolationIsConflictWithoutSqlOrValues) {
  Exec(kCreateItems);
  Exec("INSERT INTO items (id) VALUES ($1)", {std::string("dup-secret-value")});
  auto again = Await(db_->Execute("INSERT INTO items (id) VALUES ($1)", {std::string("dup-secret-value")}));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_EQ(again.error().message.find("dup-secret-value"), std::string::npos);
  EXPECT_EQ(again.error().message.find("INSERT"), std::string::npos);
  EXPECT_EQ(again.error().message.find("items"), std::string::npos);
}

TEST_P(DatabaseTest, ErrorsNeverContainSql) {
  auto syntax = Await(db_->Execute("SELEC secret_column FROM nowhere"));
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().code, ErrorCode::kInternal);
  auto missing =
      Await(db_->Execute("SELECT secret_column FROM no_such_table WHERE x = $1", {std::string("secret-param")}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kInternal);
  for (const auto& error : {syntax.error(), missing.error()}) {
    EXPECT_EQ(error.message.find("secret"), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find("SELEC"), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find("no_such_table"), std::string::npos) << error.message;
  }
  // The database is still usable afterwards.
  EXPECT_TRUE(Await(db_->Ping()));
}

TEST_P(DatabaseTest, MisuseIsAnErrorNotSilence) {
  Exec(kCreateItems);
  auto two = Await(db_->Execute("INSERT INTO items (id) VALUES ('a'); DELETE FROM items"));
  EXPECT_FALSE(two);
  auto missing_param = Await(db_->Execute("SELECT id FROM items WHERE id = $1 AND s = $2", {std::string("a")}));
  EXPECT_FALSE(missing_param);
  EXPECT_EQ(Count("items"), 0);
}

TEST_P(DatabaseTest, TransactionCommitIsVisible) {
  Exec(kCreateItems);
  {
    auto tx = Await(db_->Begin());
    ASSERT_TRUE(tx) << tx.error().message;
    auto inserted = Await((*tx)->Execute("INSERT INTO items (id) VALUES ($1)", {std::string("t")}));
    ASSERT_TRUE(inserted);
    // Visible inside the transaction.
    EXPECT_EQ(Await((*tx)->Execute("SELECT id FROM items"))->size(), 1u);
    ASSERT_TRUE(Await((*tx)->Commit()));
    EXPECT_FALSE(Await((*tx)->Execute("SELECT 1")));  // finished
  }
  EXPECT_EQ(Count("items"), 1);
}

TEST_P(DatabaseTest, TransactionRollsBackWhenDroppedWithoutCommit) {
  Exec(kCreateItems);
  {
    auto tx = Await(db_->Begin());
    ASSERT_TRUE(tx);
    ASSERT_TRUE(Await((*tx)->Execute("INSERT INTO items (id) VALUES ('gone')")));
  }
  Drain();
  EXPECT_EQ(Count("items"), 0);
  // The writer / connection is free again.
  auto next = Await(db_->Begin());
  ASSERT_TRUE(next);
  ASSERT_TRUE(Await((*next)->Execute("INSERT INTO items (id) VALUES ('kept')")));
  ASSERT_TRUE(Await((*next)->Commit()));
  EXPECT_EQ(Count("items"), 1);
}

TEST_P(DatabaseTest, FailedStatementThenDropRollsBack) {
  Exec(kCreateItems);
  Exec("INSERT INTO items (id) VALUES ('a')");
  {
    auto tx = Await(db_->Begin());
    ASSERT_TRUE(tx);
    ASSERT_TRUE(Await((*tx)->Execute("INSERT INTO items (id) VALUES ('b')")));
    auto dup = Await((*tx)->Execute("INSERT INTO items (id) VALUES ('a')"));
    ASSERT_FALSE(dup);
    EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  }
  Drain();
  EXPECT_EQ(Count("items"), 1);
}

TEST_P(DatabaseTest, BatchesRunInOneTransaction) {
  Exec(kCreateItems);
  Exec("INSERT INTO items (id) VALUES ('a')");
  Exec("INSERT INTO items (id) VALUES ('b')");
  std::vector<Params> rows{{std::string("A"), std::string("a")}, {std::string("-"), std::string("none")},
                           {std::string("B"), std::string("b")}};
  auto affected = Await(db_->ExecuteBatch("UPDATE items SET s = $1 WHERE id = $2", std::move(rows)));
  ASSERT_TRUE(affected) << affected.error().message;
  EXPECT_EQ(*affected, (std::vector<std::int64_t>{1, 0, 1}));

  // One failure rolls the whole batch back.
  std::vector<Params> failing{{std::string("c")}, {std::string("a")}};
  auto failed = Await(db_->ExecuteBatch("INSERT INTO items (id) VALUES ($1)", std::move(failing)));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kConflict);
  Drain();
  EXPECT_EQ(Count("items"), 2);
  EXPECT_TRUE(Await(db_->ExecuteBatch("UPDATE items SET s = 'x'", {}))) << "an empty batch is fine";
}

TEST_P(DatabaseTest, StatementsRunInOneTransactionAndRollBackWhenOneMustChangeAndDoesNot) {
  Exec(kCreateItems);
  Exec("INSERT INTO items (id) VALUES ('a')");
  auto statements = [](std::string missing) {
    std::vector<Statement> list;
    list.push_back(Statement{"INSERT INTO items (id) VALUES ($1)", {std::string("b")}, /*must_change=*/true});
    list.push_back(Statement{"UPDATE items SET s = 'x' WHERE id = $1", {std::move(missing)}});
    list.push_back(Statement{"UPDATE items SET s = 'y' WHERE id = $1", {std::string("a")}, /*must_change=*/true});
    return list;
  };
  // An update that changes nothing is fine unless it must change a row.
  auto done = Await(db_->ExecuteAll(statements("none")));
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_TRUE(*done);
  EXPECT_EQ(Count("items"), 2);

  std::vector<Statement> refused;
  refused.push_back(Statement{"INSERT INTO items (id) VALUES ($1)", {std::string("c")}, /*must_change=*/true});
  refused.push_back(Statement{"UPDATE items SET s = 'z' WHERE id = $1", {std::string("none")}, /*must_change=*/true});
  auto rolled_back = Await(db_->ExecuteAll(std::move(refused)));
  ASSERT_TRUE(rolled_back) << rolled_back.error().message;
  EXPECT_FALSE(*rolled_back);
  Drain();
  EXPECT_EQ(Count("items"), 2) << "the insert before the refused update is rolled back";

  auto failed = Await(db_->ExecuteAll(statements("a")));  // 'b' exists now
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kConflict);
  Drain();
  EXPECT_EQ(Count("items"), 2);
}

TEST_P(DatabaseTest, ConcurrentTransactionsSerialise) {
  Exec("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
  Exec("CREATE TABLE counter_log (seq INTEGER NOT NULL)");
  Exec("INSERT INTO counter (id, n) VALUES (1, 0)");
  constexpr int kWorkers = 20;
  int committed = 0;
  for (int i = 0; i < kWorkers; ++i) {
    asio::co_spawn(
        io_,
        [&]() -> Task<void> {
          auto tx = co_await db_->Begin();
          EXPECT_TRUE(tx) << tx.error().message;
          if (!tx) co_return;
          auto updated = co_await (*tx)->Execute("UPDATE counter SET n = n + 1 WHERE id = 1");
          EXPECT_TRUE(updated);
          // Give the others a chance to interleave while this transaction is open.
          co_await asio::post(co_await asio::this_coro::executor, kUseAwaitable);
          auto read = co_await (*tx)->Execute("SELECT n FROM counter WHERE id = 1");
          EXPECT_TRUE(read);
          if (!read) co_return;
          Params seq{read->Int(0, "n")};
          auto logged = co_await (*tx)->Execute("INSERT INTO counter_log (seq) VALUES ($1)", seq);
          EXPECT_TRUE(logged);
          if ((co_await (*tx)->Commit()).has_value()) ++committed;
        },
        asio::detached);
  }
  Drain();
  EXPECT_EQ(committed, kWorkers);
  EXPECT_EQ(Exec("SELECT n FROM counter WHERE id = 1").Int(0, "n"), kWorkers);
  // Each transaction saw its own increment: the logged values are exactly 1..20.
  Result log = Exec(
      "SELECT COUNT(DISTINCT seq) AS distinct_seq, MIN(seq) AS lo, MAX(seq) AS hi "
      "FROM counter_log");
  EXPECT_EQ(log.Int(0, "distinct_seq"), kWorkers);
  EXPECT_EQ(log.Int(0, "lo"), 1);
  EXPECT_EQ(log.Int(0, "hi"), kWorkers);
}

// Like production: several I/O threads share one Database. Mixed reads, writes and
// transactions from coroutines spread over a 4-thread io_context.
TEST_P(DatabaseTest, ManyIoThreadsShareOneDatabase) {
  Exec("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
  Exec("CREATE TABLE events (id TEXT PRIMARY KEY)");
  Exec("INSERT INTO counter (id, n) VALUES (1, 0)");
  constexpr int kWorkers = 40;
  asio::io_context io(4);
  std::atomic<int> failures{0};
  for (int i = 0; i < kWorkers; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> Task<void> {
          const Params event{"event-" + std::to_string(i)};
          if (!co_await db_->Execute("INSERT INTO events (id) VALUES ($1)", event)) ++failures;
          if (!co_await db_->Execute("SELECT id FROM events WHERE id = $1", event)) ++failures;
          auto tx = co_await db_->Begin();
          if (!tx) {
            ++failures;
            co_return;
          }
          if (!co_await (*tx)->Execute("UPDATE counter SET n = n + 1 WHERE id = 1")) ++failures;
          if (i % 4 == 0) co_return;  // dropped: rolled back
          if (!co_await (*tx)->Commit()) ++failures;
        },
        asio::detached);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&io] { io.run(); });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Count("events"), kWorkers);
  EXPECT_EQ(Exec("SELECT n FROM counter").Int(0, "n"), kWorkers - kWorkers / 4);
  EXPECT_TRUE(PollUntil([&] { return db_->Stats().checked_out == 0; }));
}

TEST_P(DatabaseTest, MigrateAppliesOnceAndIsIdempotent) {
  auto first = Await(db_->Migrate());
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*first, static_cast<int>(MigrationCount()));
  auto second = Await(db_->Migrate());
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(*second, 0);
  Result applied = Exec("SELECT version, name, applied_at FROM schema_migrations ORDER BY version");
  ASSERT_EQ(applied.size(), MigrationCount());
  EXPECT_EQ(applied.Int(0, "version"), 1);
  EXPECT_FALSE(applied.Text(0, "name").empty());
}

TEST_P(DatabaseTest, ConcurrentMigrateFromTwoProcessesAppliesOnce) {
  if (GetParam() == Backend::kSqliteMemory) GTEST_SKIP() << "a memory database is per process";
  auto other = Open(config_);  // a second "process": its own connections
  ASSERT_TRUE(other);
  std::vector<int> applied;
  for (Database* db : {db_.get(), other.get()}) {
    asio::co_spawn(
        io_,
        [&applied, db]() -> Task<void> {
          auto result = co_await db->Migrate();
          EXPECT_TRUE(result) << result.error().message;
          applied.push_back(result ? *result : -1);
        },
        asio::detached);
  }
  Drain();
  other->Close();
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0] + applied[1], static_cast<int>(MigrationCount()));
  EXPECT_EQ(Count("schema_migrations"), static_cast<std::int64_t>(MigrationCount()));
}

TEST_P(DatabaseTest, AllDesignTablesExistAfterMigrate) {
  ASSERT_TRUE(Await(db_->Migrate()));
  for (std::string_view table : kSchemaTables) {
    auto result = Await(db_->Execute("SELECT COUNT(*) AS n FROM " + std::string(table)));
    EXPECT_TRUE(result) << table;
  }
}

// The conventions repositories rely on: same text for timestamps and booleans in both
// dialects, constraints mapped to the same error codes.
TEST_P(DatabaseTest, SchemaBehavesTheSameInBothDialects) {
  ASSERT_TRUE(Await(db_->Migrate()));
  Exec("INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, $3, $4)",
       {std::string("u1"), std::string("a@example.com"), std::string("hash"), std::string("A")});
  Result user = Exec("SELECT role, is_active, created_at, last_login_at FROM users WHERE id = $1", {std::string("u1")});
  EXPECT_EQ(user.Text(0, "role"), "user");
  EXPECT_EQ(user.Text(0, "is_active"), "1");
  EXPECT_TRUE(std::regex_match(user.Text(0, "created_at"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << user.Text(0, "created_at");
  EXPECT_TRUE(user.IsNull(0, "last_login_at"));

  // RFC 3339 in, the same text out.
  Exec(
      "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) "
      "VALUES ($1, $2, $3, $4, $5)",
      {std::string("r1"), std::string("u1"), std::string("f1"), std::string("h1"),
       std::string("2031-02-03T04:05:06.789Z")});
  EXPECT_EQ(Exec("SELECT expires_at FROM refresh_tokens").Text(0, "expires_at"), "2031-02-03T04:05:06.789Z");
  // Timestamps compare as times in both dialects.
  EXPECT_EQ(
      Exec("SELECT id FROM refresh_tokens WHERE expires_at > $1", {std::string("2031-02-03T04:05:06.000Z")}).size(),
      1u);

  // Booleans as int64 parameters.
  Exec("INSERT INTO conversations (id, user_id, title, pinned) VALUES ($1, $2, $3, $4)",
       {std::string("c1"), std::string("u1"), std::string("T"), std::int64_t{1}});
  EXPECT_EQ(Exec("SELECT pinned, archived FROM conversations WHERE pinned = $1", {std::int64_t{1}}).Text(0, "archived"),
            "0");

  auto orphan = Await(db_->Execute("INSERT INTO conversations (id, user_id) VALUES ($1, $2)",
                                   {std::string("c2"), std::string("nobody")}));
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().code, ErrorCode::kInvalidArgument);
  auto bad_status =
      Await(db_->Execute("INSERT INTO messages (id, conversation_id, role, status) VALUES ($1, $2, $3, $4)",
                         {std::string("m0"), std::string("c1"), std::string("user"), std::string("bogus")}));
  ASSERT_FALSE(bad_status);
  EXPECT_EQ(bad_status.error().code, ErrorCode::kInvalidArgument);
  auto same_email = Await(
      db_->Execute("INSERT INTO users (id, email) VALUES ($1, $2)", {std::string("u2"), std::string("a@example.com")}));
  ASSERT_FALSE(same_email);
  EXPECT_EQ(same_email.error().code, ErrorCode::kConflict);

  // A message tree; deleting the user removes everything it owns.
  Exec("INSERT INTO messages (id, conversation_id, role, content) VALUES ('m1', 'c1', 'user', 'hi')");
  Exec(
      "INSERT INTO messages (id, conversation_id, parent_id, role, content, status) "
      "VALUES ('m2', 'c1', 'm1', 'assistant', 'hello', 'streaming')");
  Exec("UPDATE conversations SET current_leaf_id = $1 WHERE id = $2", {std::string("m2"), std::string("c1")});
  Exec("DELETE FROM users WHERE id = $1", {std::string("u1")});
  EXPECT_EQ(Count("conversations"), 0);
  EXPECT_EQ(Count("messages"), 0);
  EXPECT_EQ(Count("refresh_tokens"), 0);
}

TEST_P(DatabaseTest, ChunksAreFullTextSearchable) {
  ASSERT_TRUE(Await(db_->Migrate()));
  Exec("INSERT INTO users (id, email) VALUES ('u1', 'a@example.com')");
  Exec("INSERT INTO knowledge_bases (id, user_id, name) VALUES ('kb1', 'u1', 'KB')");
  Exec(
      "INSERT INTO documents (id, knowledge_base_id, user_id, filename) "
      "VALUES ('d1', 'kb1', 'u1', 'a.txt')");
  Exec(
      "INSERT INTO chunks (id, document_id, knowledge_base_id, ordinal, content) VALUES "
      "('k1', 'd1', 'kb1', 0, 'The quick brown fox jumps over the lazy dog'), "
      "('k2', 'd1', 'kb1', 1, 'Completely unrelated text about databases')");
  const std::string_view search = IsPostgres()
                                      ? "SELECT id FROM chunks WHERE search_vector @@ plainto_tsquery('english', $1)"
                                      : "SELECT c.id FROM chunks_fts JOIN chunks c ON c.seq = chunks_fts.rowid "
                                        "WHERE chunks_fts MATCH $1";
  Result found = Exec(search, {std::string("jumping foxes")});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found.Text(0, "id"), "k1");
  Exec("UPDATE chunks SET content = 'nothing here' WHERE id = 'k1'");
  EXPECT_TRUE(Exec(search, {std::string("fox")}).empty());
  Exec("DELETE FROM documents WHERE id = 'd1'");
  EXPECT_EQ(Count("chunks"), 0);
  EXPECT_TRUE(Exec(search, {std::string("databases")}).empty());
}

TEST_P(DatabaseTest, StatsCountConnectionsInUse) {
  const PoolStats idle = db_->Stats();
  switch (GetParam()) {
    case Backend::kSqliteMemory:
      EXPECT_EQ(idle.size, 1u);
      break;
    case Backend::kSqliteFile:
      EXPECT_EQ(idle.size, 1u + config_.sqlite_readers);
      break;
    case Backend::kPostgres:
      EXPECT_EQ(idle.size, config_.pool_size);
      break;
  }
  EXPECT_EQ(idle.checked_out, 0u);
  {
    auto tx = Await(db_->Begin());
    ASSERT_TRUE(tx);
    EXPECT_EQ(db_->Stats().checked_out, 1u);
  }
  // The rollback (and so the release) of a dropped transaction is asynchronous.
  EXPECT_TRUE(PollUntil([&] { return db_->Stats().checked_out == 0; }));
}

TEST_P(DatabaseTest, PingAndClose) {
  EXPECT_TRUE(Await(db_->Ping()));
  db_->Close();
  auto after = Await(db_->Execute("SELECT 1"));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, ErrorCode::kUnavailable);
  EXPECT_FALSE(Await(db_->Begin()));
}

TEST_P(DatabaseTest, WriterWaitIsBounded) {
  Reopen([](DatabaseConfig& config) {
    config.pool_size = 1;
    config.connect_timeout = 100ms;
  });
  Exec(kCreateItems);
  auto tx = Await(db_->Begin());
  ASSERT_TRUE(tx);
  const auto started = std::chrono::steady_clock::now();
  // Waits for the writer (SQLite) or the only pooled connection (PostgreSQL), then gives up.
  auto blocked = Await(db_->Execute("INSERT INTO items (id) VALUES ('x')"));
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error().code, ErrorCode::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 90ms);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  ASSERT_TRUE(Await((*tx)->Commit()));
  EXPECT_TRUE(Await(db_->Execute("INSERT INTO items (id) VALUES ('x')")));
}

TEST_P(DatabaseTest, ReadersSeeCommittedWritesAtOnce) {
  Exec(kCreateItems);
  for (int i = 0; i < 20; ++i) {
    Exec("INSERT INTO items (id, i) VALUES ($1, $2)", {std::to_string(i), std::int64_t{i}});
    EXPECT_EQ(Count("items"), i + 1);
  }
}

// While a slow statement runs, the caller's io_context keeps serving other work: the
// statement runs on store threads (SQLite) or waits on the socket (PostgreSQL).
TEST_P(DatabaseTest, SlowStatementDoesNotBlockTheCallingThread) {
  const std::string_view slow = IsPostgres() ? "SELECT pg_sleep(0.05) IS NULL AS done"
                                             : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                                               "WHERE x < 500000) SELECT COUNT(*) AS done FROM c";
  bool running = true;
  int ticks_while_running = 0;
  asio::co_spawn(
      io_,
      [&]() -> Task<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (running) {
          timer.expires_after(1ms);
          co_await timer.async_wait(kUseAwaitable);
          if (running) ++ticks_while_running;
        }
      },
      asio::detached);
  const auto started = std::chrono::steady_clock::now();
  auto result = Await([&]() -> Task<Expected<Result>> {
    auto answer = co_await db_->Execute(slow);
    running = false;
    co_return answer;
  }());
  ASSERT_TRUE(result) << result.error().message;
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_GT(ticks_while_running, 0) << "statement took "
                                    << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
}

TEST_P(DatabaseTest, PostgresStatementTimeoutCancels) {
  if (!IsPostgres()) GTEST_SKIP() << "PostgreSQL only";
  Reopen([](DatabaseConfig& config) { config.statement_timeout = 200ms; });
  const auto started = std::chrono::steady_clock::now();
  auto slow = Await(db_->Execute("SELECT pg_sleep(10)"));
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(slow.error().message, "database timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_TRUE(Await(db_->Execute("SELECT 1")));  // a fresh connection
  EXPECT_EQ(db_->Stats().checked_out, 0u);
}

TEST_P(DatabaseTest, PostgresUnreachableServerIsUnavailable) {
  if (!IsPostgres()) GTEST_SKIP() << "PostgreSQL only";
  DatabaseConfig config = config_;
  config.url = "postgresql://chatd@127.0.0.1:1/chatd";  // nothing listens on port 1
  auto down = Open(config);
  const auto started = std::chrono::steady_clock::now();
  auto ping = Await(down->Ping());
  ASSERT_FALSE(ping);
  EXPECT_EQ(ping.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(ping.error().message, "database unavailable");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_EQ(down->Stats().checked_out, 0u);
}

// Stops and restarts the server under a live Database: /health must turn unavailable
// within seconds and recover without restarting chatd. The server is a private one
// (CHATD_TEST_RESTART_DATABASE_URL, controlled by CHATD_TEST_PG_CTL), so tests running
// beside this one keep theirs.
TEST_P(DatabaseTest, PostgresRecoversAfterServerRestart) {
  if (!IsPostgres()) GTEST_SKIP() << "PostgreSQL only";
  const char* pg_ctl = std::getenv("CHATD_TEST_PG_CTL");
  const char* url = std::getenv("CHATD_TEST_RESTART_DATABASE_URL");
  if (pg_ctl == nullptr || *pg_ctl == '\0' || url == nullptr || *url == '\0') {
    GTEST_SKIP() << "set CHATD_TEST_PG_CTL and CHATD_TEST_RESTART_DATABASE_URL to run";
  }
  auto opened = OpenDatabase(DatabaseConfig{.url = url, .pool_size = 2});
  ASSERT_TRUE(opened) << opened.error().message;
  std::unique_ptr<Database> db = std::move(*opened);
  // Warm the pool so there are idle connections to go stale.
  ASSERT_TRUE(Await(db->Ping()));
  ASSERT_EQ(std::system((std::string(pg_ctl) + " stop").c_str()), 0);
  const auto stopped = std::chrono::steady_clock::now();
  auto down = Await(db->Ping());
  EXPECT_FALSE(down);
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, 5s);
  ASSERT_EQ(std::system((std::string(pg_ctl) + " start").c_str()), 0);
  // pg_ctl start waits until the server accepts connections; allow a short grace anyway.
  Expected<void> up = MakeError(ErrorCode::kUnavailable, "not yet");
  for (auto deadline = std::chrono::steady_clock::now() + 10s; !up && std::chrono::steady_clock::now() < deadline;) {
    up = Await(db->Ping());
    if (!up) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(up);
  auto one = Await(db->Execute("SELECT 1 AS n"));
  ASSERT_TRUE(one);
  EXPECT_EQ(one->Int(0, "n"), 1);
  db->Close();
}

INSTANTIATE_TEST_SUITE_P(Backends, DatabaseTest,
                         ::testing::Values(Backend::kSqliteMemory, Backend::kSqliteFile, Backend::kPostgres),
                         BackendName);

}  // namespace
}  // namespace chatd::store
