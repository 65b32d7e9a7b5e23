// gateway::UsageRecorder against every backend: events are batched into transactions,
// flushed on a full batch, on the interval and on Stop(); kept and retried while the
// database is down; counted as dropped past the buffer's bound, after a refused batch's
// last try, and when shutdown comes before the database does.
#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "gateway/usage_recorder.hpp"
#include "gateway_test_support.hpp"

namespace chatd::gateway {
namespace {

using namespace std::chrono_literals;
using chatd::testing::Backend;
using chatd::testing::MetricValue;
using chatd::testing::WaitUntil;

class UsageRecorderTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    flaky_.emplace(database_.db());
    repository_.emplace(*flaky_);
    user_ = database_.InsertUser("usage@example.com", SystemTime{std::chrono::seconds(1'800'000'000)});
  }

  void TearDown() override {
    if (recorder_) recorder_->Stop();
    recorder_.reset();
  }

  UsageRecorder& Make(UsageRecorderConfig config) {
    recorder_.emplace(config, *repository_, metrics_);
    return *recorder_;
  }

  UsageEvent Event(std::int64_t completion_tokens = 10) {
    UsageEvent event;
    event.user_id = user_;
    event.model = "demo";
    event.provider = "demo";
    event.usage = TokenUsage{20, completion_tokens, 0, false};
    event.cost = 0.0001;
    event.latency_ms = 250;
    event.ttft_ms = 40;
    event.created_at = *ParseRfc3339("2027-01-15T10:00:00Z");
    return event;
  }

  std::int64_t Stored() {
    auto rows = database_.Await(database_.db().Execute("SELECT COUNT(*) AS n FROM usage_events"));
    EXPECT_TRUE(rows) << rows.error().message;
    return rows ? rows->Int(0, "n") : -1;
  }

  double Recorded() const { return MetricValue(metrics_, "usage_events_recorded_total"); }
  double Dropped() const { return MetricValue(metrics_, "usage_events_dropped_total"); }
  double Depth() const { return MetricValue(metrics_, "usage_events_queue_depth"); }

  chatd::testing::TestDatabase database_;
  std::optional<chatd::testing::FlakyDatabase> flaky_;
  std::optional<store::UsageRepository> repository_;
  metrics::Registry metrics_;
  std::optional<UsageRecorder> recorder_;
  std::string user_;
};

TEST(UsageRecorderRow, KeepsEveryFieldOfTheEvent) {
  UsageEvent event;
  event.api_key_id = "key";
  event.user_id = "user";
  event.model = "gpt-4o";
  event.provider = "openai";
  event.usage = TokenUsage{100, 50, 30, true};
  event.cost = 0.25;
  event.latency_ms = 900;
  event.status = UsageStatus::kCancelled;
  event.created_at = *ParseRfc3339("2027-01-15T10:00:00.123Z");
  const store::UsageEventRecord row = ToRecord(event);
  EXPECT_TRUE(LooksLikeUuid(row.id));
  EXPECT_NE(ToRecord(event).id, row.id);  // each recording is its own event
  EXPECT_EQ(row.api_key_id, "key");
  EXPECT_EQ(row.user_id, "user");
  EXPECT_EQ(row.model, "gpt-4o");
  EXPECT_EQ(row.provider, "openai");
  EXPECT_EQ(row.prompt_tokens, 100);
  EXPECT_EQ(row.completion_tokens, 50);
  EXPECT_EQ(row.cached_tokens, 30);
  EXPECT_EQ(row.cost, 0.25);
  EXPECT_EQ(row.latency_ms, 900);
  EXPECT_FALSE(row.ttft_ms);
  EXPECT_EQ(row.status, "cancelled");
  EXPECT_EQ(row.created_at, "2027-01-15T10:00:00.123Z");
}

TEST_P(UsageRecorderTest, BatchesEventsIntoTransactions) {
  UsageRecorder& recorder = Make({.batch_size = 500, .flush_interval = 1h});
  for (int i = 0; i < 1200; ++i) recorder.Record(Event());  // buffered before the start
  EXPECT_EQ(recorder.Buffered(), 1200u);
  EXPECT_EQ(Depth(), 1200);
  recorder.Start();
  // Two full batches go at once; the rest waits for the interval (an hour) or the stop.
  ASSERT_TRUE(WaitUntil([&] { return Recorded() == 1000; }));
  EXPECT_EQ(recorder.Buffered(), 200u);
  recorder.Stop();
  EXPECT_EQ(Stored(), 1200);
  EXPECT_EQ(Recorded(), 1200);
  EXPECT_EQ(Dropped(), 0);
  EXPECT_EQ(Depth(), 0);
  EXPECT_EQ(flaky_->begins.load(), 3);  // 500 + 500 + 200
}

TEST_P(UsageRecorderTest, AFullBatchIsWrittenWithoutWaitingForTheInterval) {
  UsageRecorder& recorder = Make({.batch_size = 5, .flush_interval = 1h});
  recorder.Start();
  for (int i = 0; i < 5; ++i) recorder.Record(Event());
  ASSERT_TRUE(WaitUntil([&] { return Recorded() == 5; }));
  EXPECT_EQ(Stored(), 5);
}

TEST_P(UsageRecorderTest, TheIntervalFlushesWhatIsThere) {
  UsageRecorder& recorder = Make({.batch_size = 500, .flush_interval = 20ms});
  recorder.Start();
  for (int i = 0; i < 3; ++i) recorder.Record(Event());
  ASSERT_TRUE(WaitUntil([&] { return Recorded() == 3; }));
  recorder.Record(Event());
  ASSERT_TRUE(WaitUntil([&] { return Recorded() == 4; }));
  EXPECT_EQ(Stored(), 4);
}

TEST_P(UsageRecorderTest, StopFlushesEverythingBuffered) {
  UsageRecorder& recorder = Make({.batch_size = 500, .flush_interval = 1h});
  recorder.Start();
  for (int i = 0; i < 42; ++i) recorder.Record(Event());
  recorder.Stop();
  EXPECT_EQ(Stored(), 42);
  EXPECT_EQ(Recorded(), 42);
  // After the stop nothing is accepted any more: counted, not lost silently.
  recorder.Record(Event());
  EXPECT_EQ(Dropped(), 1);
  EXPECT_EQ(Stored(), 42);
}

TEST_P(UsageRecorderTest, KeepsEventsWhileTheDatabaseIsDownAndRetries) {
  UsageRecorder& recorder =
      Make({.batch_size = 500, .flush_interval = 10ms, .retry_backoff = 5ms, .max_retry_backoff = 20ms});
  flaky_->down = true;
  recorder.Start();
  for (int i = 0; i < 4; ++i) recorder.Record(Event());
  ASSERT_TRUE(WaitUntil([&] { return flaky_->begins.load() >= 3; }));  // tried and retried
  EXPECT_EQ(recorder.Buffered(), 4u);
  EXPECT_EQ(Recorded(), 0);
  EXPECT_EQ(Dropped(), 0);
  flaky_->down = false;
  ASSERT_TRUE(WaitUntil([&] { return Recorded() == 4; }));
  EXPECT_EQ(Stored(), 4);  // each once
  EXPECT_EQ(recorder.Buffered(), 0u);
  EXPECT_EQ(Dropped(), 0);
}

TEST_P(UsageRecorderTest, PastTheBoundNewEventsAreDroppedAndCounted) {
  UsageRecorder& recorder = Make(
      {.buffer_size = 5, .batch_size = 2, .flush_interval = 10ms, .retry_backoff = 5ms, .max_retry_backoff = 20ms});
  flaky_->down = true;
  recorder.Start();
  for (int i = 0; i < 8; ++i) recorder.Record(Event(i));
  EXPECT_EQ(Dropped(), 3);
  EXPECT_EQ(recorder.Buffered(), 5u);  // the batch being retried included
  ASSERT_TRUE(WaitUntil([&] { return flaky_->begins.load() >= 2; }));
  EXPECT_EQ(recorder.Buffered(), 5u);
  flaky_->down = false;
  ASSERT_TRUE(WaitUntil([&] { return Recorded() == 5; }));
  EXPECT_EQ(Stored(), 5);
  // The oldest five were kept: completion tokens 0..4.
  auto rows = database_.Await(database_.db().Execute("SELECT MAX(completion_tokens) AS n FROM usage_events"));
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->Int(0, "n"), 4);
}

TEST_P(UsageRecorderTest, ABatchTheDatabaseRefusesIsDroppedAfterThreeTries) {
  UsageRecorder& recorder =
      Make({.batch_size = 500, .flush_interval = 10ms, .retry_backoff = 5ms, .max_retry_backoff = 20ms});
  flaky_->failure = ErrorCode::kInternal;
  flaky_->down = true;
  for (int i = 0; i < 3; ++i) recorder.Record(Event());  // one batch
  recorder.Start();
  ASSERT_TRUE(WaitUntil([&] { return Dropped() == 3; }));
  EXPECT_EQ(flaky_->begins.load(), 3);
  EXPECT_EQ(recorder.Buffered(), 0u);
  // The pipeline goes on with the next events.
  flaky_->down = false;
  recorder.Record(Event());
  ASSERT_TRUE(WaitUntil([&] { return Recorded() == 1; }));
  EXPECT_EQ(Stored(), 1);
}

TEST_P(UsageRecorderTest, AShutdownWhileTheDatabaseIsDownGivesUpAfterItsTimeout) {
  UsageRecorder& recorder = Make({.batch_size = 500,
                                  .flush_interval = 1h,
                                  .retry_backoff = 5ms,
                                  .max_retry_backoff = 20ms,
                                  .shutdown_timeout = 100ms});
  flaky_->down = true;
  for (int i = 0; i < 3; ++i) recorder.Record(Event());
  recorder.Start();
  const auto start = std::chrono::steady_clock::now();
  recorder.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_GE(flaky_->begins.load(), 2);  // it kept trying until the deadline
  EXPECT_EQ(Dropped(), 3);
  EXPECT_EQ(Recorded(), 0);
  EXPECT_EQ(Depth(), 0);
}

TEST_P(UsageRecorderTest, RecordIsSafeFromManyThreads) {
  UsageRecorder& recorder = Make({.batch_size = 100, .flush_interval = 5ms});
  recorder.Start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) recorder.Record(Event());
    });
  }
  for (auto& thread : threads) thread.join();
  recorder.Stop();
  EXPECT_EQ(Stored(), 1000);
  EXPECT_EQ(Recorded(), 1000);
  EXPECT_EQ(Dropped(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, UsageRecorderTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::gateway
