// gateway::KeyLimiter: allowed models, RPM/TPM buckets, budgets reserved before and settled
// after a request (also under concurrency), started from the usage store — on every
// backend (the store is where a budget's spend comes from after a restart).
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "api/guard.hpp"
#include "gateway/key_limiter.hpp"
#include "gateway_test_support.hpp"
#include "llm/demo_provider.hpp"

namespace chatd::gateway {
namespace {

using namespace std::chrono_literals;
using accounts::Budget;
using accounts::BudgetPeriod;
using accounts::BudgetUnit;
using accounts::KeyLimits;
using chatd::testing::Backend;
using chatd::testing::UsageRow;

TEST(BudgetPeriod, DaysAndMonthsAreUtcCalendarPeriods) {
  const SystemTime now = *ParseRfc3339("2027-02-14T17:30:00Z");
  const BudgetWindowBounds day = BudgetPeriodAt(BudgetPeriod::kDay, now);
  EXPECT_EQ(FormatRfc3339(day.start), "2027-02-14T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(day.end), "2027-02-15T00:00:00.000Z");
  const BudgetWindowBounds month = BudgetPeriodAt(BudgetPeriod::kMonth, now);
  EXPECT_EQ(FormatRfc3339(month.start), "2027-02-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(month.end), "2027-03-01T00:00:00.000Z");
  const BudgetWindowBounds december = BudgetPeriodAt(BudgetPeriod::kMonth, *ParseRfc3339("2027-12-31T23:59:59Z"));
  EXPECT_EQ(FormatRfc3339(december.end), "2028-01-01T00:00:00.000Z");
}

TEST(BudgetCounter, ConcurrentReservationsNeverPassTheLimit) {
  BudgetCounter counter(10'000, BudgetUnit::kTokens, {});
  ASSERT_TRUE(counter.Start(1'000));
  EXPECT_FALSE(counter.Start(5'000));  // only the first start counts
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (counter.TryReserve(7)) granted.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(granted.load(), 9'000 / 7);  // every whole reservation that fits, not one more
  EXPECT_LE(counter.used(), 10'000);
  EXPECT_EQ(counter.used(), 1'000 + 1285 * 7);
  EXPECT_FALSE(counter.TryReserve(7));  // 5 left
  counter.Settle(7, 0);                 // one request used nothing
  EXPECT_TRUE(counter.TryReserve(7));
  counter.Settle(7, 12);                // and one used more than it reserved: 10 000 exactly
  EXPECT_FALSE(counter.TryReserve(0));  // a budget used up refuses everything
}

class KeyLimiterTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    usage_.emplace(database_.db());
    for (const auto& model : llm::DemoProvider::Models()) ASSERT_TRUE(models_.Add(demo_, model));
    llm::ModelInfo priced;
    priced.id = "priced";
    priced.provider = "demo";
    priced.upstream_model = "demo";
    priced.input_price_per_million = 1.0;   // $1 per 1M prompt tokens
    priced.output_price_per_million = 3.0;  // $3 per 1M completion tokens
    ASSERT_TRUE(models_.Add(demo_, priced));
    ASSERT_TRUE(models_.AddAlias("cheap", "priced"));
    user_ = database_.InsertUser("keys@example.com", clock_.Now());
    limiter_.emplace(
        [this](std::string key_id) -> Task<Expected<std::shared_ptr<const KeyLimits>>> {
          std::lock_guard lock(mutex_);
          if (lookup_failure_) co_return MakeError(*lookup_failure_, "lookup failed (test)");
          auto it = limits_.find(key_id);
          if (it == limits_.end()) co_return MakeError(ErrorCode::kNotFound, "API key not found");
          co_return it->second;
        },
        *usage_, models_, clock_, metrics_);
  }

  // A key row, so that usage events can name it.
  std::string AddKey() {
    store::AccountsRepository accounts(database_.db());
    store::ApiKeyRecord key;
    key.id = NewUuidV7();
    key.user_id = user_;
    key.name = "k";
    key.key_hash = "hash-" + key.id;
    key.prefix = "sk-chatd-x";
    key.created_at = FormatRfc3339(clock_.Now());
    auto inserted = database_.Await(accounts.InsertApiKey(key));
    EXPECT_TRUE(inserted) << inserted.error().message;
    return key.id;
  }

  void SetLimits(const std::string& key_id, KeyLimits limits) {
    std::lock_guard lock(mutex_);
    limits_[key_id] = std::make_shared<const KeyLimits>(std::move(limits));
  }

  Expected<Ticket> Admit(const std::string& key_id, const std::string& model, std::int64_t tokens) {
    Caller caller{user_, key_id};
    return database_.Await(limiter_->Admit(caller, model, tokens));
  }

  Ticket Admitted(const std::string& key_id, const std::string& model, std::int64_t tokens) {
    auto ticket = Admit(key_id, model, tokens);
    EXPECT_TRUE(ticket) << ticket.error().message;
    return ticket ? *ticket : Ticket{};
  }

  Error Refused(const std::string& key_id, const std::string& model, std::int64_t tokens) {
    auto ticket = Admit(key_id, model, tokens);
    EXPECT_FALSE(ticket) << "admitted " << tokens << " tokens";
    return ticket ? Error{} : ticket.error();
  }

  void Settle(const Ticket& ticket, std::int64_t prompt, std::int64_t completion, double cost = 0) {
    limiter_->Settle(ticket, TokenUsage{prompt, completion, 0, false}, cost, UsageStatus::kOk);
  }

  chatd::testing::TestDatabase database_;
  ManualClock clock_{*ParseRfc3339("2027-01-15T08:00:00Z")};
  metrics::Registry metrics_;
  llm::DemoProvider demo_;
  llm::ModelRegistry models_;
  std::optional<store::UsageRepository> usage_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const KeyLimits>> limits_;
  std::optional<ErrorCode> lookup_failure_;
  std::optional<KeyLimiter> limiter_;
  std::string user_;
};

TEST_P(KeyLimiterTest, SessionsAndKeysWithoutLimitsKeepNoState) {
  auto session = database_.Await(limiter_->Admit(Caller{user_, ""}, "demo", 1'000'000));
  ASSERT_TRUE(session);
  EXPECT_EQ(session->id, 0u);
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{});
  const Ticket ticket = Admitted(key, "demo", 500);
  EXPECT_EQ(ticket.id, 0u);
  EXPECT_EQ(ticket.model, "demo");
  EXPECT_EQ(ticket.reserved_tokens, 500);
  EXPECT_EQ(ticket.caller.api_key_id, key);
  Settle(ticket, 10, 10);
  EXPECT_EQ(limiter_->InFlight(), 0u);
}

TEST_P(KeyLimiterTest, ModelsOutsideTheKeysListAreForbidden) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.allowed_models = {"cheap", "demo-slow"}});
  Admitted(key, "priced", 10);  // allowed through its alias
  Admitted(key, "demo-slow", 10);
  const Error error = Refused(key, "demo", 10);
  EXPECT_EQ(error.code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(error.param, "model");
  EXPECT_NE(error.message.find("'demo'"), std::string::npos) << error.message;
  EXPECT_EQ(chatd::testing::MetricValue(metrics_, "gateway_key_limit_refusals_total{reason=\"model\"}"), 1);
}

TEST_P(KeyLimiterTest, RevokedKeysAndLookupFailures) {
  const Error revoked = Refused(NewUuidV7(), "demo", 1);
  EXPECT_EQ(revoked.code, ErrorCode::kUnauthenticated);
  lookup_failure_ = ErrorCode::kUnavailable;
  const Error down = Refused(NewUuidV7(), "demo", 1);
  EXPECT_EQ(down.code, ErrorCode::kUnavailable);
}

TEST_P(KeyLimiterTest, RequestsPerMinute) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.rpm = 3});
  for (int i = 0; i < 3; ++i) Settle(Admitted(key, "demo", 10), 1, 1);
  const Error error = Refused(key, "demo", 10);
  EXPECT_EQ(error.code, ErrorCode::kRateLimited);
  EXPECT_EQ(error.retry_after, 20s);  // one request comes back every 60 / 3 seconds
  EXPECT_NE(error.message.find("3 requests per minute"), std::string::npos) << error.message;
  clock_.Advance(19'999ms);
  Refused(key, "demo", 10);
  clock_.Advance(1ms);
  Admitted(key, "demo", 10);
  EXPECT_EQ(chatd::testing::MetricValue(metrics_, "gateway_key_limit_refusals_total{reason=\"rpm\"}"), 2);
  // Another key has its own bucket.
  const std::string other = NewUuidV7();
  SetLimits(other, KeyLimits{.rpm = 1});
  Admitted(other, "demo", 10);
}

TEST_P(KeyLimiterTest, TokensPerMinuteAreCorrectedBySettlement) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.tpm = 1000});
  const Ticket first = Admitted(key, "demo", 600);
  EXPECT_NE(first.id, 0u);
  Error error = Refused(key, "demo", 600);  // 400 left
  EXPECT_EQ(error.code, ErrorCode::kRateLimited);
  EXPECT_EQ(error.retry_after, 12s);                 // 200 more tokens at 1000 a minute
  Settle(first, 50, 50);                             // used 100 of the 600 taken: 500 come back
  const Ticket second = Admitted(key, "demo", 600);  // 900 were there
  // More than the key may ever use in a minute: refused outright.
  error = Refused(key, "demo", 1001);
  EXPECT_NE(error.message.find("lower max_tokens"), std::string::npos) << error.message;
  // A request that used more than it took leaves the bucket in debt: 300 + 600 - 1200.
  Settle(second, 200, 1000);
  error = Refused(key, "demo", 100);
  EXPECT_EQ(error.retry_after, 24s);  // 400 tokens at 1000 a minute
  clock_.Advance(24s);
  Admitted(key, "demo", 100);
  EXPECT_EQ(limiter_->InFlight(), 1u);
}

TEST_P(KeyLimiterTest, TokenBudgetsAreReservedThenSettled) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.budget = Budget{1000, BudgetUnit::kTokens, BudgetPeriod::kDay}});
  const Ticket a = Admitted(key, "demo", 400);
  const Ticket b = Admitted(key, "demo", 400);
  Error error = Refused(key, "demo", 400);  // 800 reserved: 200 left
  EXPECT_EQ(error.code, ErrorCode::kRateLimited);
  EXPECT_NE(error.message.find("200 tokens left"), std::string::npos) << error.message;
  EXPECT_EQ(error.retry_after, 16h);  // until midnight UTC
  Settle(a, 60, 40);                  // a used 100: 500 left
  const Ticket c = Admitted(key, "demo", 400);
  // A cancelled stream is charged what it generated.
  limiter_->Settle(b, TokenUsage{300, 100, 0, true}, 0, UsageStatus::kCancelled);  // b used 400
  Settle(c, 200, 300);                                                             // c used 500: 1000 spent
  error = Refused(key, "demo", 1);
  EXPECT_NE(error.message.find("used up"), std::string::npos) << error.message;
  EXPECT_EQ(chatd::testing::MetricValue(metrics_, "gateway_key_limit_refusals_total{reason=\"budget\"}"), 2);
  // The next day starts a new budget.
  clock_.Advance(16h);
  Admitted(key, "demo", 1000);
}

TEST_P(KeyLimiterTest, BudgetsStartFromTheStoredUsage) {
  const std::string key = AddKey();
  const std::vector<store::UsageEventRecord> rows = {
      UsageRow(user_, key, "demo", 500, 400, 0, "2027-01-15T01:00:00.000Z"),            // today: counts
      UsageRow(user_, key, "demo", 5000, 5000, 0, "2027-01-14T23:00:00.000Z"),          // yesterday
      UsageRow(user_, NewUuidV7(), "demo", 5000, 5000, 0, "2027-01-15T02:00:00.000Z"),  // another key
  };
  ASSERT_TRUE(database_.Await(usage_->Insert(rows)));
  SetLimits(key, KeyLimits{.budget = Budget{1000, BudgetUnit::kTokens, BudgetPeriod::kDay}});
  Refused(key, "demo", 101);  // 900 spent before this process counted
  Admitted(key, "demo", 100);
}

TEST_P(KeyLimiterTest, UsdBudgetsReserveAtTheHigherPriceAndSettleAtTheCost) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.budget = Budget{0.01, BudgetUnit::kUsd, BudgetPeriod::kMonth}});
  const Ticket first = Admitted(key, "priced", 2000);  // 2000 × $3/1M = $0.006
  Error error = Refused(key, "cheap", 2000);           // $0.006 more would pass $0.01
  EXPECT_NE(error.message.find("0.0060 USD"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("0.0040 USD left"), std::string::npos) << error.message;
  Settle(first, 1000, 0, 0.001);                        // cost the gateway computed
  const Ticket second = Admitted(key, "priced", 2000);  // $0.001 + $0.006
  Settle(second, 0, 0, 0.009);                          // $0.010: used up
  error = Refused(key, "demo", 1);                      // a model without prices costs nothing, but nothing is left
  EXPECT_NE(error.message.find("used up"), std::string::npos) << error.message;
  EXPECT_EQ(error.retry_after, std::chrono::duration_cast<std::chrono::milliseconds>(
                                   *ParseRfc3339("2027-02-01T00:00:00Z") - clock_.Now()));
}

TEST_P(KeyLimiterTest, RefusedRequestsGiveBackWhatTheyTook) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.rpm = 5, .tpm = 1000, .budget = Budget{100, BudgetUnit::kTokens, BudgetPeriod::kDay}});
  for (int i = 0; i < 3; ++i) Refused(key, "demo", 200);  // over the budget, under RPM and TPM
  // Had the refusals kept their request and tokens, these would not all pass.
  std::vector<Ticket> tickets;
  for (int i = 0; i < 5; ++i) tickets.push_back(Admitted(key, "demo", 20));
  EXPECT_EQ(limiter_->InFlight(), 5u);
  for (const Ticket& ticket : tickets) Settle(ticket, 10, 10);
  EXPECT_EQ(limiter_->InFlight(), 0u);
}

// Many requests on one key at once, from several threads: the budget is never promised
// twice, and once they settle the spend is what they used.
TEST_P(KeyLimiterTest, ConcurrentRequestsCannotOverspendTheBudget) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.budget = Budget{10'000, BudgetUnit::kTokens, BudgetPeriod::kDay}});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::mutex tickets_mutex;
  std::vector<Ticket> tickets;
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      asio::io_context io(1);
      for (int i = 0; i < kPerThread; ++i) {
        asio::co_spawn(
            io,
            [&]() -> Task<void> {
              const Caller caller{user_, key};
              const std::string model = "demo";
              auto ticket = co_await limiter_->Admit(caller, model, 70);
              if (ticket) {
                std::lock_guard lock(tickets_mutex);
                tickets.push_back(*ticket);
              } else {
                EXPECT_EQ(ticket.error().code, ErrorCode::kRateLimited);
                refused.fetch_add(1);
              }
            },
            asio::detached);
      }
      io.run();
    });
  }
  for (auto& thread : threads) thread.join();
  // All in flight at once: exactly the reservations that fit.
  EXPECT_EQ(tickets.size(), 10'000u / 70);
  EXPECT_EQ(refused.load(), kThreads * kPerThread - static_cast<int>(10'000 / 70));
  EXPECT_EQ(limiter_->InFlight(), tickets.size());

  // They settle concurrently, each having used 50 of its 70: 142 × 50 = 7100 spent.
  std::vector<std::thread> settlers;
  for (int t = 0; t < kThreads; ++t) {
    settlers.emplace_back([&, t] {
      for (std::size_t i = t; i < tickets.size(); i += kThreads) Settle(tickets[i], 25, 25);
    });
  }
  for (auto& thread : settlers) thread.join();
  EXPECT_EQ(limiter_->InFlight(), 0u);
  // 2900 left: 41 more of 70 fit, the 42nd does not.
  for (int i = 0; i < 41; ++i) Admitted(key, "demo", 70);
  Refused(key, "demo", 70);
}

// Requests that use more than they reserved (no max_tokens: the gateway's estimate was
// low) can pass the budget, but only by what those in flight used beyond it.
TEST_P(KeyLimiterTest, OverspendIsBoundedByWhatIsInFlight) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.budget = Budget{1000, BudgetUnit::kTokens, BudgetPeriod::kDay}});
  std::vector<Ticket> in_flight;
  for (int i = 0; i < 10; ++i) in_flight.push_back(Admitted(key, "demo", 100));
  Refused(key, "demo", 1);
  for (const Ticket& ticket : in_flight) Settle(ticket, 50, 100);  // 150 each: 1500 spent
  // Nothing more until the period ends: the overspend was the 10 × 50 in flight.
  const Error error = Refused(key, "demo", 1);
  EXPECT_NE(error.message.find("used up"), std::string::npos) << error.message;
}

// What a client sees of the refusals, through the app's error writer: OpenAI's shape,
// the status the SDKs map to their exception classes, and Retry-After.
TEST_P(KeyLimiterTest, RefusalsAreOpenAiErrors) {
  const std::string key = NewUuidV7();
  SetLimits(key, KeyLimits{.allowed_models = {"demo"}, .rpm = 1});
  Admitted(key, "demo", 1);
  http::Response limited = api::ErrorResponse(Refused(key, "demo", 1));
  EXPECT_EQ(limited.status, 429);
  EXPECT_NE(limited.body.find(R"("code":"rate_limit_exceeded")"), std::string::npos) << limited.body;
  EXPECT_NE(limited.body.find(R"("type":"rate_limit_error")"), std::string::npos) << limited.body;
  std::string retry_after;
  for (const auto& [name, value] : limited.headers) {
    if (name == "Retry-After") retry_after = value;
  }
  EXPECT_EQ(retry_after, "60");
  http::Response forbidden = api::ErrorResponse(Refused(key, "priced", 1));
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_NE(forbidden.body.find(R"("code":"permission_denied")"), std::string::npos) << forbidden.body;
  EXPECT_NE(forbidden.body.find(R"("param":"model")"), std::string::npos) << forbidden.body;
}

INSTANTIATE_TEST_SUITE_P(Backends, KeyLimiterTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::gateway
