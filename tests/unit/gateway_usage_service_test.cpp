// Usage reports on every backend: gateway::UsageService (ranges, grouping, validation,
// isolation between users) and the JSON of GET /usage and GET /admin/usage (api::UsageApi),
// over events put in the store.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "accounts_test_database.hpp"
#include "api/usage_api.hpp"
#include "gateway/usage_service.hpp"
#include "gateway_test_support.hpp"

namespace chatd::gateway {
namespace {

using chatd::testing::Backend;
using chatd::testing::UsageRow;

class UsageServiceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    usage_.emplace(database_.db());
    service_.emplace(*usage_, clock_);
    alice_ = database_.InsertUser("alice@example.com", clock_.Now());
    bob_ = database_.InsertUser("bob@example.com", clock_.Now());
    store::AccountsRepository accounts(database_.db());
    store::ApiKeyRecord key;
    key.id = NewUuidV7();
    key.user_id = alice_;
    key.name = "ci";
    key.key_hash = "hash-ci";
    key.prefix = "sk-chatd-x";
    key.created_at = "2027-01-01T00:00:00.000Z";
    EXPECT_TRUE(database_.Await(accounts.InsertApiKey(key)));
    key_ = key.id;
    const std::vector<store::UsageEventRecord> rows = {
        UsageRow(alice_, key_, "demo", 100, 50, 0.5, "2027-01-10T09:00:00.000Z"),
        UsageRow(alice_, key_, "gpt", 1000, 500, 2.0, "2027-01-14T09:00:00.000Z"),
        UsageRow(alice_, "", "demo", 10, 5, 0.25, "2027-01-14T10:00:00.000Z", "error"),
        UsageRow(alice_, key_, "demo", 1, 1, 0, "2026-11-01T00:00:00.000Z"),  // older than 30 days
        UsageRow(bob_, "", "demo", 7, 7, 1.0, "2027-01-14T11:00:00.000Z"),
    };
    EXPECT_TRUE(database_.Await(usage_->Insert(rows)));
  }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  UsageReportResult Report(const UsageReportRequest& request, bool admin = false) {
    auto result = admin ? Await(service_->AdminReport(request)) : Await(service_->UserReport(alice_, request));
    EXPECT_TRUE(result) << result.error().message;
    return result ? *result : UsageReportResult{};
  }

  void Invalid(const UsageReportRequest& request, std::string_view param, bool admin = false) {
    auto result = admin ? Await(service_->AdminReport(request)) : Await(service_->UserReport(alice_, request));
    ASSERT_FALSE(result) << param;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(result.error().param, param) << result.error().message;
  }

  // Calls the HTTP adapter as the router would, and parses its JSON.
  simdjson::dom::element Http(const std::string& query, bool admin, int status = 200) {
    api::UsageApi api(*service_);
    http::Request request;
    query_ = query;
    request.query = query_;
    accounts::Principal caller;
    caller.user_id = alice_;
    http::Response response = admin ? Await(api.Admin(request, caller)) : Await(api.Own(request, caller));
    EXPECT_EQ(response.status, status) << response.body;
    body_ = response.body;
    simdjson::dom::element element;
    EXPECT_EQ(parser_.parse(body_).get(element), simdjson::SUCCESS) << body_;
    return element;
  }

  chatd::testing::TestDatabase database_;
  ManualClock clock_{*ParseRfc3339("2027-01-15T00:00:00Z")};
  std::optional<store::UsageRepository> usage_;
  std::optional<UsageService> service_;
  std::string alice_, bob_, key_;
  std::string query_, body_;
  simdjson::dom::parser parser_;
};

TEST_P(UsageServiceTest, DefaultsToTheLast30DaysOfTheCallersOwnUsage) {
  const UsageReportResult result = Report({});
  EXPECT_EQ(result.from, "2026-12-16T00:00:00.000Z");
  EXPECT_EQ(result.to, "2027-01-15T00:00:00.000Z");
  EXPECT_EQ(result.report.totals.requests, 3);  // not bob's, not the old one
  EXPECT_EQ(result.report.totals.errors, 1);
  EXPECT_EQ(result.report.totals.prompt_tokens, 1110);
  EXPECT_EQ(result.report.totals.completion_tokens, 555);
  EXPECT_DOUBLE_EQ(result.report.totals.cost, 2.75);
}

TEST_P(UsageServiceTest, GroupsAndRanges) {
  UsageReportRequest request;
  request.from = "2027-01-14T00:00:00Z";
  request.to = "2027-01-15T00:00:00Z";
  request.group_by = "model";
  UsageReportResult result = Report(request);
  EXPECT_EQ(result.report.totals.requests, 2);
  ASSERT_EQ(result.report.groups.size(), 2u);
  EXPECT_EQ(result.report.groups[0].value, "gpt");
  EXPECT_EQ(result.report.groups[1].value, "demo");

  request.from.reset();
  request.group_by = "day";
  result = Report(request);
  ASSERT_EQ(result.report.groups.size(), 2u);
  EXPECT_EQ(result.report.groups[0].value, "2027-01-10");
  EXPECT_EQ(result.report.groups[1].value, "2027-01-14");

  request.group_by = "key";
  request.limit = "1";
  result = Report(request);
  ASSERT_EQ(result.report.groups.size(), 1u);
  EXPECT_EQ(result.report.groups[0].value, key_);
  EXPECT_EQ(result.report.groups[0].label, "ci");
  EXPECT_TRUE(result.report.more_groups);
}

TEST_P(UsageServiceTest, RefusesBadParameters) {
  Invalid({.from = "yesterday"}, "from");
  Invalid({.to = "2027-13-01T00:00:00Z"}, "to");
  Invalid({.from = "2027-01-15T00:00:00Z", .to = "2027-01-14T00:00:00Z"}, "from");
  Invalid({.group_by = "user"}, "group_by");  // admins only
  Invalid({.group_by = "provider"}, "group_by", true);
  Invalid({.limit = "0"}, "limit");
  Invalid({.limit = "1001"}, "limit");
  Invalid({.limit = "ten"}, "limit");
  Invalid({.user_id = ""}, "user_id", true);
}

TEST_P(UsageServiceTest, AdminsSeeEveryoneAndCanNarrowToOneUser) {
  UsageReportRequest request;
  request.group_by = "user";
  UsageReportResult result = Report(request, true);
  EXPECT_EQ(result.report.totals.requests, 4);
  ASSERT_EQ(result.report.groups.size(), 2u);
  EXPECT_EQ(result.report.groups[0].value, alice_);
  EXPECT_EQ(result.report.groups[0].label, "alice@example.com");
  EXPECT_EQ(result.report.groups[1].value, bob_);

  request.user_id = bob_;
  result = Report(request, true);
  EXPECT_EQ(result.report.totals.requests, 1);
  EXPECT_DOUBLE_EQ(result.report.totals.cost, 1.0);
}

TEST_P(UsageServiceTest, HttpShapes) {
  simdjson::dom::element own = Http("group_by=key&from=2027-01-01T00%3A00%3A00Z", false);
  EXPECT_EQ(std::string_view(own["object"]), "usage.report");
  EXPECT_EQ(std::string_view(own["from"]), "2027-01-01T00:00:00.000Z");
  EXPECT_EQ(std::string_view(own["to"]), "2027-01-15T00:00:00.000Z");
  EXPECT_EQ(std::string_view(own["group_by"]), "key");
  EXPECT_EQ(int64_t(own["totals"]["requests"]), 3);
  EXPECT_EQ(int64_t(own["totals"]["errors"]), 1);
  EXPECT_EQ(int64_t(own["totals"]["total_tokens"]), 1665);
  EXPECT_DOUBLE_EQ(double(own["totals"]["cost_usd"]), 2.75);
  EXPECT_FALSE(own["has_more"].get_bool().value());
  simdjson::dom::array data = own["data"];
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(std::string_view(data.at(0)["api_key_id"]), key_);
  EXPECT_EQ(std::string_view(data.at(0)["name"]), "ci");
  EXPECT_EQ(int64_t(data.at(0)["requests"]), 2);
  EXPECT_EQ(int64_t(data.at(0)["prompt_tokens"]), 1100);
  EXPECT_EQ(int64_t(data.at(0)["completion_tokens"]), 550);
  EXPECT_EQ(int64_t(data.at(0)["cached_tokens"]), 0);
  EXPECT_TRUE(data.at(1)["api_key_id"].is_null());  // the session's request
  EXPECT_TRUE(data.at(1)["name"].is_null());

  simdjson::dom::element plain = Http("", false);
  EXPECT_TRUE(plain["group_by"].is_null());
  EXPECT_EQ(simdjson::dom::array(plain["data"]).size(), 0u);

  simdjson::dom::element admin = Http("group_by=user", true);
  simdjson::dom::array users = admin["data"];
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(std::string_view(users.at(1)["email"]), "bob@example.com");

  simdjson::dom::element by_day = Http("group_by=day&from=2027-01-01T00:00:00Z", false);
  EXPECT_EQ(std::string_view(by_day["data"].at(0)["day"]), "2027-01-10");

  simdjson::dom::element error = Http("group_by=user", false, 400);
  EXPECT_EQ(std::string_view(error["error"]["param"]), "group_by");
  EXPECT_EQ(std::string_view(error["error"]["type"]), "invalid_request_error");
}

INSTANTIATE_TEST_SUITE_P(Backends, UsageServiceTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::gateway
