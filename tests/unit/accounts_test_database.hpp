// A migrated database for the accounts suites, per backend: SQLite in memory always;
// PostgreSQL when CHATD_TEST_DATABASE_URL is set, each test in its own schema
// (search_path), dropped afterwards — the pattern of store_database_test.cpp.
#pragma once

#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "core/asio.hpp"
#include "core/ids.hpp"
#include "core/time.hpp"
#include "store/accounts_repository.hpp"
#include "store/open.hpp"

namespace chatd::testing {

enum class Backend { kSqlite, kPostgres };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "sqlite" : "postgres";
}

class TestDatabase {
 public:
  /// Opens and migrates; returns false (and the caller should GTEST_SKIP) when the backend
  /// is not configured.
  bool Open(Backend backend) {
    store::DatabaseConfig config;
    if (backend == Backend::kSqlite) {
      config.url = "sqlite::memory:";
    } else {
      const char* url = std::getenv("CHATD_TEST_DATABASE_URL");
      if (url == nullptr || *url == '\0') return false;
      store::DatabaseConfig admin_config;
      admin_config.url = url;
      admin_ = OpenOrFail(admin_config);
      std::random_device device;
      schema_ = "chatd_accounts_test_" +
                std::to_string(std::uniform_int_distribution<std::uint64_t>(1, 1'000'000'000'000)(device));
      auto created = Await(admin_->Execute("CREATE SCHEMA " + schema_));
      EXPECT_TRUE(created) << created.error().message;
      config.url = std::string(url) + (std::string(url).find('?') == std::string::npos ? "?" : "&") +
                   "options=-csearch_path%3D" + schema_;
    }
    db_ = OpenOrFail(config);
    auto migrated = Await(db_->Migrate());
    EXPECT_TRUE(migrated) << migrated.error().message;
    return true;
  }

  ~TestDatabase() { Close(); }

  void Close() {
    Drain();
    if (db_) db_->Close();
    db_.reset();
    if (admin_) {
      auto dropped = Await(admin_->Execute("DROP SCHEMA " + schema_ + " CASCADE"));
      EXPECT_TRUE(dropped) << dropped.error().message;
      admin_->Close();
      admin_.reset();
    }
  }

  /// Runs `task` to completion on the test's io_context (and whatever else is queued on
  /// it, e.g. detached writes).
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

  void Drain() {
    io_.restart();
    io_.run();
  }

  store::Database& db() { return *db_; }
  asio::io_context& io() { return io_; }

  /// A bare user row (no password) for tests of what users own; returns its id.
  std::string InsertUser(std::string_view email, SystemTime now) {
    store::AccountsRepository accounts(*db_);
    store::UserRecord user;
    user.id = NewUuidV7();
    user.email = std::string(email);
    user.created_at = user.updated_at = FormatRfc3339(now);
    auto inserted = Await(accounts.InsertUser(user));
    EXPECT_TRUE(inserted) << inserted.error().message;
    return user.id;
  }

 private:
  static std::unique_ptr<store::Database> OpenOrFail(const store::DatabaseConfig& config) {
    auto db = store::OpenDatabase(config);
    EXPECT_TRUE(db) << db.error().message;
    return db ? std::move(*db) : nullptr;
  }

  asio::io_context io_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<store::Database> admin_;
  std::string schema_;
};

}  // namespace chatd::testing
