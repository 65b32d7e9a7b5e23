#include "accounts/secret_store.hpp"

#include <gtest/gtest.h>

#include "store/open.hpp"

namespace chatd::accounts {
namespace {

template <typename T>
T Await(asio::io_context& io, Task<T> task) {
  std::optional<T> result;
  asio::co_spawn(io, [&]() -> Task<void> { result.emplace(co_await std::move(task)); }, asio::detached);
  io.restart();
  io.run();
  return std::move(*result);
}

class SecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::OpenDatabase(store::DatabaseConfig{.url = "sqlite::memory:"});
    ASSERT_TRUE(opened) << opened.error().message;
    database_ = std::move(*opened);
    ASSERT_TRUE(Await(io_, database_->Migrate()));
  }
  void TearDown() override { database_->Close(); }

  SecretBox Box(std::string_view current, std::vector<std::string> previous = {}) {
    auto box = SecretBox::FromBase64(current, std::move(previous));
    EXPECT_TRUE(box) << box.error().message;
    return std::move(*box);
  }

  asio::io_context io_{1};
  ManualClock clock_;
  std::unique_ptr<store::Database> database_;
  const std::string old_key_ = SecretBox::GenerateKeyBase64();
  const std::string new_key_ = SecretBox::GenerateKeyBase64();
};

TEST_F(SecretStoreTest, StoresOnlyCiphertextAndReadsItBack) {
  SecretBox box = Box(old_key_);
  SecretStore secrets(*database_, box, clock_);
  ASSERT_TRUE(Await(io_, secrets.Put("openai", "sk-live-123")));
  auto row = Await(io_, database_->Execute("SELECT ciphertext FROM secrets WHERE name = 'openai'"));
  ASSERT_TRUE(row);
  EXPECT_EQ(row->Text(0, "ciphertext").find("sk-live-123"), std::string::npos);
  auto read = Await(io_, secrets.Get("openai"));
  ASSERT_TRUE(read);
  EXPECT_EQ(read->value_or(""), "sk-live-123");
  auto missing = Await(io_, secrets.Get("nothing"));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST_F(SecretStoreTest, AValueCopiedToAnotherNameDoesNotOpen) {
  SecretBox box = Box(old_key_);
  SecretStore secrets(*database_, box, clock_);
  ASSERT_TRUE(Await(io_, secrets.Put("a", "one")));
  ASSERT_TRUE(Await(io_, secrets.Put("b", "two")));
  ASSERT_TRUE(Await(io_, database_->Execute(
                             "UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'a') "
                             "WHERE name = 'b'")));
  auto read = Await(io_, secrets.Get("b"));
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().message, "cannot decrypt: tampered");
}

TEST_F(SecretStoreTest, RotateResealsUnderTheCurrentKeySoTheOldKeyCanGo) {
  {
    SecretBox old_box = Box(old_key_);
    SecretStore secrets(*database_, old_box, clock_);
    ASSERT_TRUE(Await(io_, secrets.Put("openai", "sk-1")));
    ASSERT_TRUE(Await(io_, secrets.Put("deepseek", "sk-2")));
  }
  SecretBox keyring = Box(new_key_, {old_key_});
  SecretStore rotating(*database_, keyring, clock_);
  auto report = Await(io_, rotating.Rotate());
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->rotated, 2);
  EXPECT_EQ(report->unchanged, 0);
  auto again = Await(io_, rotating.Rotate());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->rotated, 0);
  EXPECT_EQ(again->unchanged, 2);

  SecretBox new_only = Box(new_key_);
  SecretStore after(*database_, new_only, clock_);
  auto read = Await(io_, after.Get("deepseek"));
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->value_or(""), "sk-2");
}

TEST_F(SecretStoreTest, RotationStopsAtASecretItCannotOpen) {
  {
    SecretBox lost = Box(old_key_);
    SecretStore secrets(*database_, lost, clock_);
    ASSERT_TRUE(Await(io_, secrets.Put("orphan", "x")));
  }
  SecretBox keyring = Box(new_key_);  // the old key was dropped too early
  SecretStore rotating(*database_, keyring, clock_);
  auto report = Await(io_, rotating.Rotate());
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().message.find("\"orphan\""), std::string::npos);
}

}  // namespace
}  // namespace chatd::accounts
