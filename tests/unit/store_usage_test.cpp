// store::UsageRepository on every backend (see accounts_test_database.hpp): batched
// inserts (idempotent, safe against deleted users and keys), a key's spend, reports.
#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "gateway_test_support.hpp"
#include "store/usage_repository.hpp"

namespace chatd::store {
namespace {

using chatd::testing::Backend;
using chatd::testing::UsageRow;

class UsageRepositoryTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    repo_.emplace(database_.db());
    accounts_.emplace(database_.db());
    const SystemTime now = SystemTime{std::chrono::seconds(1'800'000'000)};
    alice_ = database_.InsertUser("alice@example.com", now);
    bob_ = database_.InsertUser("bob@example.com", now);
    alice_key_ = AddKey(alice_, "alice-key");
    bob_key_ = AddKey(bob_, "bob-key");
  }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  std::string AddKey(const std::string& user_id, const std::string& name) {
    ApiKeyRecord key;
    key.id = NewUuidV7();
    key.user_id = user_id;
    key.name = name;
    key.key_hash = "hash-" + key.id;
    key.prefix = "sk-chatd-x";
    key.created_at = "2027-01-01T00:00:00.000Z";
    auto inserted = Await(accounts_->InsertApiKey(key));
    EXPECT_TRUE(inserted) << inserted.error().message;
    return key.id;
  }

  void Insert(const std::vector<UsageEventRecord>& rows) {
    auto inserted = Await(repo_->Insert(rows));
    ASSERT_TRUE(inserted) << inserted.error().message;
  }

  std::int64_t Count(const std::string& where = "1 = 1") {
    auto rows = Await(database_.db().Execute("SELECT COUNT(*) AS n FROM usage_events WHERE " + where));
    EXPECT_TRUE(rows) << rows.error().message;
    return rows ? rows->Int(0, "n") : -1;
  }

  chatd::testing::TestDatabase database_;
  std::optional<UsageRepository> repo_;
  std::optional<AccountsRepository> accounts_;
  std::string alice_, bob_, alice_key_, bob_key_;
};

TEST_P(UsageRepositoryTest, InsertsBatchesOnceAndKeepsEveryField) {
  std::vector<UsageEventRecord> rows;
  for (int i = 0; i < 250; ++i) {  // more than one statement's worth of rows
    rows.push_back(UsageRow(alice_, alice_key_, "demo", 10, 5, 0.001, "2027-01-15T10:00:00.000Z"));
  }
  rows[7].ttft_ms.reset();
  rows[8].status = "cancelled";
  rows[9].cached_tokens = 4;
  Insert(rows);
  EXPECT_EQ(Count(), 250);
  // A batch retried after an unclear failure is not stored twice.
  Insert(rows);
  EXPECT_EQ(Count(), 250);

  auto stored = Await(database_.db().Execute(
      "SELECT user_id, api_key_id, model, provider, prompt_tokens, completion_tokens, cached_tokens, cost, latency_ms, "
      "ttft_ms, status, created_at FROM usage_events WHERE id = $1",
      {rows[9].id}));
  ASSERT_TRUE(stored && stored->size() == 1);
  EXPECT_EQ(stored->Text(0, "user_id"), alice_);
  EXPECT_EQ(stored->Text(0, "api_key_id"), alice_key_);
  EXPECT_EQ(stored->Text(0, "model"), "demo");
  EXPECT_EQ(stored->Text(0, "provider"), "demo");
  EXPECT_EQ(stored->Int(0, "prompt_tokens"), 10);
  EXPECT_EQ(stored->Int(0, "completion_tokens"), 5);
  EXPECT_EQ(stored->Int(0, "cached_tokens"), 4);
  EXPECT_DOUBLE_EQ(stored->Number(0, "cost"), 0.001);
  EXPECT_EQ(stored->Int(0, "latency_ms"), 120);
  EXPECT_EQ(stored->Int(0, "ttft_ms"), 30);
  EXPECT_EQ(stored->Text(0, "created_at"), "2027-01-15T10:00:00.000Z");
  EXPECT_EQ(Count("ttft_ms IS NULL"), 1);
  EXPECT_EQ(Count("status = 'cancelled'"), 1);
}

TEST_P(UsageRepositoryTest, EventsOfDeletedUsersAndKeysAreStoredWithoutThem) {
  // The user and key went away while the event waited in the recorder's buffer.
  std::vector<UsageEventRecord> rows = {
      UsageRow(NewUuidV7(), NewUuidV7(), "demo", 1, 1, 0, "2027-01-15T10:00:00.000Z"),
      UsageRow(alice_, alice_key_, "demo", 1, 1, 0, "2027-01-15T10:00:00.000Z"),
      UsageRow(alice_, "", "demo", 1, 1, 0, "2027-01-15T10:00:00.000Z"),  // a session
  };
  Insert(rows);
  EXPECT_EQ(Count(), 3);
  EXPECT_EQ(Count("user_id IS NULL"), 1);
  EXPECT_EQ(Count("api_key_id IS NULL"), 2);

  // In a batch of several statements, after the first has gone in: the whole batch is
  // written again through the join, each event once.
  std::vector<UsageEventRecord> batch;
  for (int i = 0; i < 250; ++i) batch.push_back(UsageRow(bob_, bob_key_, "demo", 1, 1, 0, "2027-01-15T11:00:00.000Z"));
  batch[180].user_id = NewUuidV7();
  Insert(batch);
  EXPECT_EQ(Count(), 253);
  EXPECT_EQ(Count("user_id IS NULL"), 2);
  EXPECT_EQ(Count("user_id = '" + bob_ + "'"), 249);
}

TEST_P(UsageRepositoryTest, KeySpendCountsTheKeySinceATime) {
  Insert({
      UsageRow(alice_, alice_key_, "demo", 100, 50, 0.25, "2027-01-14T23:59:59.999Z"),  // before
      UsageRow(alice_, alice_key_, "demo", 10, 5, 0.5, "2027-01-15T00:00:00.000Z"),     // at: counts
      UsageRow(alice_, alice_key_, "demo", 1, 2, 0.125, "2027-01-15T12:00:00.000Z", "error"),
      UsageRow(bob_, bob_key_, "demo", 1000, 1000, 9, "2027-01-15T12:00:00.000Z"),  // another key
  });
  auto spend = Await(repo_->KeySpend(alice_key_, "2027-01-15T00:00:00.000Z"));
  ASSERT_TRUE(spend) << spend.error().message;
  EXPECT_EQ(spend->tokens, 18);
  EXPECT_DOUBLE_EQ(spend->cost, 0.625);
  auto none = Await(repo_->KeySpend(NewUuidV7(), "2027-01-01T00:00:00.000Z"));
  ASSERT_TRUE(none);
  EXPECT_EQ(none->tokens, 0);
  EXPECT_EQ(none->cost, 0);
}

TEST_P(UsageRepositoryTest, CountsCacheHitsApartFromErrors) {
  Insert({
      UsageRow(alice_, alice_key_, "demo", 10, 20, 0.5, "2027-01-15T10:00:00.000Z"),
      UsageRow(alice_, alice_key_, "demo", 0, 0, 0, "2027-01-15T10:00:01.000Z", "cached"),
      UsageRow(alice_, alice_key_, "demo", 0, 0, 0, "2027-01-15T10:00:02.000Z", "cached"),
      UsageRow(alice_, alice_key_, "demo", 1, 0, 0, "2027-01-15T10:00:03.000Z", "error"),
      UsageRow(alice_, alice_key_, "demo", 1, 1, 0, "2027-01-15T10:00:04.000Z", "cancelled"),
  });
  UsageQuery query;
  query.user_id = alice_;
  query.from = "2027-01-15T00:00:00.000Z";
  query.to = "2027-01-16T00:00:00.000Z";
  query.group_by = UsageGroupBy::kKey;
  auto report = Await(repo_->Report(query));
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->totals.requests, 5);
  EXPECT_EQ(report->totals.errors, 2);  // a hit is not an error
  EXPECT_EQ(report->totals.cache_hits, 2);
  ASSERT_EQ(report->groups.size(), 1u);
  EXPECT_EQ(report->groups[0].totals.cache_hits, 2);
  EXPECT_EQ(report->groups[0].totals.errors, 2);
}

TEST_P(UsageRepositoryTest, ReportsAUsersUsageOnly) {
  Insert({
      UsageRow(alice_, alice_key_, "demo", 10, 20, 0.5, "2027-01-14T10:00:00.000Z"),
      UsageRow(alice_, alice_key_, "gpt", 100, 200, 1.5, "2027-01-15T10:00:00.000Z"),
      UsageRow(alice_, "", "gpt", 1, 2, 0.25, "2027-01-15T11:00:00.000Z", "error"),
      UsageRow(alice_, alice_key_, "demo", 7, 7, 0, "2027-01-16T00:00:00.000Z"),  // at `to`: excluded
      UsageRow(bob_, bob_key_, "demo", 1000, 1000, 10, "2027-01-15T10:00:00.000Z"),
  });
  UsageQuery query;
  query.user_id = alice_;
  query.from = "2027-01-14T00:00:00.000Z";
  query.to = "2027-01-16T00:00:00.000Z";
  auto report = Await(repo_->Report(query));
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->totals.requests, 3);
  EXPECT_EQ(report->totals.errors, 1);
  EXPECT_EQ(report->totals.prompt_tokens, 111);
  EXPECT_EQ(report->totals.completion_tokens, 222);
  EXPECT_DOUBLE_EQ(report->totals.cost, 2.25);
  EXPECT_TRUE(report->groups.empty());

  query.group_by = UsageGroupBy::kModel;
  report = Await(repo_->Report(query));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->groups.size(), 2u);
  EXPECT_EQ(report->groups[0].value, "gpt");  // the most tokens first
  EXPECT_EQ(report->groups[0].totals.requests, 2);
  EXPECT_EQ(report->groups[0].totals.prompt_tokens, 101);
  EXPECT_EQ(report->groups[1].value, "demo");
  EXPECT_FALSE(report->more_groups);

  query.group_by = UsageGroupBy::kKey;
  report = Await(repo_->Report(query));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->groups.size(), 2u);
  EXPECT_EQ(report->groups[0].value, alice_key_);
  EXPECT_EQ(report->groups[0].label, "alice-key");
  EXPECT_EQ(report->groups[0].totals.requests, 2);
  EXPECT_EQ(report->groups[1].value, "");  // the session's request
  EXPECT_EQ(report->groups[1].label, "");

  query.group_by = UsageGroupBy::kDay;
  report = Await(repo_->Report(query));
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->groups.size(), 2u);
  EXPECT_EQ(report->groups[0].value, "2027-01-14");
  EXPECT_EQ(report->groups[0].totals.requests, 1);
  EXPECT_EQ(report->groups[1].value, "2027-01-15");
  EXPECT_EQ(report->groups[1].totals.requests, 2);

  query.max_groups = 1;
  report = Await(repo_->Report(query));
  ASSERT_TRUE(report);
  ASSERT_EQ(report->groups.size(), 1u);
  EXPECT_TRUE(report->more_groups);
}

TEST_P(UsageRepositoryTest, ReportsEveryUserForAdmins) {
  Insert({
      UsageRow(alice_, alice_key_, "demo", 10, 20, 0.5, "2027-01-15T10:00:00.000Z"),
      UsageRow(bob_, bob_key_, "demo", 1000, 1000, 10, "2027-01-15T10:00:00.000Z"),
      UsageRow(bob_, bob_key_, "demo", 1, 1, 0, "2027-01-15T10:00:00.000Z"),
  });
  UsageQuery query;
  query.all_users = true;
  query.from = "2027-01-01T00:00:00.000Z";
  query.to = "2027-02-01T00:00:00.000Z";
  query.group_by = UsageGroupBy::kUser;
  auto report = Await(repo_->Report(query));
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->totals.requests, 3);
  ASSERT_EQ(report->groups.size(), 2u);
  EXPECT_EQ(report->groups[0].value, bob_);
  EXPECT_EQ(report->groups[0].label, "bob@example.com");
  EXPECT_EQ(report->groups[0].totals.requests, 2);
  EXPECT_EQ(report->groups[1].value, alice_);
  EXPECT_EQ(report->groups[1].label, "alice@example.com");

  // Nothing in the range: zeros, no groups.
  query.from = "2026-01-01T00:00:00.000Z";
  query.to = "2026-02-01T00:00:00.000Z";
  report = Await(repo_->Report(query));
  ASSERT_TRUE(report);
  EXPECT_EQ(report->totals.requests, 0);
  EXPECT_EQ(report->totals.cost, 0);
  EXPECT_TRUE(report->groups.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, UsageRepositoryTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::store
