#include <filesystem>

#include <gtest/gtest.h>

#include "store/open.hpp"

namespace chatd::store {
namespace {

TEST(RedactDatabaseUrlTest, MasksUserinfoPassword) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://chatd:s3cret@db:5432/chatd"), "postgresql://chatd:***@db:5432/chatd");
  EXPECT_EQ(RedactDatabaseUrl("postgres://u:p%40ss@h/db?sslmode=require"), "postgres://u:***@h/db?sslmode=require");
}

TEST(RedactDatabaseUrlTest, MasksPasswordParameters) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://h/db?user=u&password=secret&sslmode=require"),
            "postgresql://h/db?user=u&password=***&sslmode=require");
  EXPECT_EQ(RedactDatabaseUrl("host=h password='a b' dbname=x"), "host=h password=*** dbname=x");
  EXPECT_EQ(RedactDatabaseUrl("host=h PASSWORD=x"), "host=h PASSWORD=***");
}

TEST(RedactDatabaseUrlTest, LeavesUrlsWithoutPasswordAlone) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://chatd@db/chatd"), "postgresql://chatd@db/chatd");
  EXPECT_EQ(RedactDatabaseUrl("sqlite:///var/lib/chatd/chatd.db"), "sqlite:///var/lib/chatd/chatd.db");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://db/chatd?old_password=1"), "postgresql://db/chatd?old_password=1");
}

Error OpenError(const std::string& url, std::size_t pool_size = 10) {
  DatabaseConfig config;
  config.url = url;
  config.pool_size = pool_size;
  auto db = OpenDatabase(config);
  EXPECT_FALSE(db) << url;
  return db ? Error{} : db.error();
}

TEST(OpenDatabaseTest, RejectsBadUrlsClearly) {
  EXPECT_EQ(OpenError("").code, ErrorCode::kInvalidArgument);
  Error unsupported = OpenError("mysql://root:hunter2@db/chatd");
  EXPECT_EQ(unsupported.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(unsupported.message.find("postgresql://"), std::string::npos);
  EXPECT_EQ(unsupported.message.find("hunter2"), std::string::npos);
  EXPECT_EQ(OpenError("sqlite://").code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(OpenError("sqlite:///tmp/x.db?mode=ro").code, ErrorCode::kInvalidArgument);
  Error bad_pg = OpenError("postgresql://u:hunter2@h/db?nosuchoption=1");
  EXPECT_EQ(bad_pg.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad_pg.message.find("hunter2"), std::string::npos);
  EXPECT_EQ(OpenError("sqlite::memory:", /*pool_size=*/0).code, ErrorCode::kInvalidArgument);
}

TEST(OpenDatabaseTest, ChoosesBackendByScheme) {
  DatabaseConfig config;
  config.url = "sqlite::memory:";
  auto memory = OpenDatabase(config);
  ASSERT_TRUE(memory);
  EXPECT_EQ((*memory)->dialect(), Dialect::kSqlite);

  config.url = "postgresql://chatd@127.0.0.1:1/chatd";  // not contacted: connects lazily
  auto postgres = OpenDatabase(config);
  ASSERT_TRUE(postgres);
  EXPECT_EQ((*postgres)->dialect(), Dialect::kPostgres);
  config.url = "postgres://chatd@127.0.0.1:1/chatd";
  EXPECT_TRUE(OpenDatabase(config));
}

TEST(OpenDatabaseTest, CreatesSqliteFileAndParentDirectory) {
  const auto dir = std::filesystem::temp_directory_path() / ("chatd_open_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  DatabaseConfig config;
  config.url = "sqlite://" + (dir / "nested" / "chatd.db").string();
  {
    auto db = OpenDatabase(config);
    ASSERT_TRUE(db) << db.error().message;
    EXPECT_EQ((*db)->Stats().size, 1u + config.sqlite_readers);
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "nested" / "chatd.db"));
  std::filesystem::remove_all(dir);
}

TEST(ResultTest, AccessorsByColumnName) {
  Result result;
  result.columns = {"id", "n", "note"};
  result.rows.push_back({std::string("a"), std::string("42"), std::nullopt});
  EXPECT_EQ(result.Text(0, "id"), "a");
  EXPECT_EQ(result.Int(0, "n"), 42);
  EXPECT_EQ(result.Text(0, "note"), "");
  EXPECT_EQ(result.Int(0, "note"), 0);
  EXPECT_TRUE(result.IsNull(0, "note"));
  EXPECT_FALSE(result.IsNull(0, "id"));
  EXPECT_THROW(result.Column("missing"), std::out_of_range);
  EXPECT_THROW(result.Int(0, "id"), std::invalid_argument);
}

}  // namespace
}  // namespace chatd::store
