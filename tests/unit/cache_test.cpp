#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cache/in_process_rate_limiter.hpp"
#include "cache/lru_cache.hpp"
#include "cache/rate_limiter.hpp"
#include "cache/ttl_cache.hpp"

namespace chatd::cache {
namespace {

using std::chrono::milliseconds;

// Runs a Take coroutine to completion; the in-process limiter never suspends.
RateDecision Take(RateLimiter& limiter, std::string_view key, const RateLimit& limit, double cost = 1) {
  asio::io_context io(1);
  RateDecision decision;
  asio::co_spawn(
      io, [&]() -> Task<void> { decision = co_await limiter.Take(key, limit, cost); }, asio::detached);
  io.run();
  return decision;
}

TEST(RateLimiter, GrantsTheBurstThenRefusesWithRetryAfter) {
  ManualClock clock;
  auto limiter = MakeInProcessRateLimiter(clock);
  const RateLimit limit{.rate_per_second = 10, .burst = 3};
  for (int i = 0; i < 3; ++i) {
    const RateDecision decision = Take(*limiter, "user:1", limit);
    EXPECT_TRUE(decision.allowed) << i;
    EXPECT_EQ(decision.limit, 3);
    EXPECT_EQ(decision.remaining, 2 - i);
    EXPECT_EQ(decision.reset_after, milliseconds(100 * (i + 1)));
    EXPECT_EQ(decision.retry_after, milliseconds(0));
  }
  const RateDecision refused = Take(*limiter, "user:1", limit);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.retry_after, milliseconds(100));
  EXPECT_EQ(refused.reset_after, milliseconds(300));
}

TEST(RateLimiter, RefillsWithTimeUpToTheBurst) {
  ManualClock clock;
  auto limiter = MakeInProcessRateLimiter(clock);
  const RateLimit limit{.rate_per_second = 10, .burst = 3};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Take(*limiter, "k", limit).allowed);
  clock.Advance(milliseconds(40));
  RateDecision refused = Take(*limiter, "k", limit);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, milliseconds(60));  // 0.4 token there, 0.6 to go
  EXPECT_EQ(refused.reset_after, milliseconds(260));

  clock.Advance(milliseconds(60));
  RateDecision granted = Take(*limiter, "k", limit);
  EXPECT_TRUE(granted.allowed);  // exactly one token, despite floating point
  EXPECT_EQ(granted.remaining, 0);

  clock.Advance(std::chrono::hours(1));  // never more than the burst
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Take(*limiter, "k", limit).allowed);
  EXPECT_FALSE(Take(*limiter, "k", limit).allowed);
}

TEST(RateLimiter, RoundsWaitsUpToWholeMilliseconds) {
  ManualClock clock;
  auto limiter = MakeInProcessRateLimiter(clock);
  const RateLimit limit{.rate_per_second = 3, .burst = 1};  // one token per 333.33 ms
  EXPECT_TRUE(Take(*limiter, "k", limit).allowed);
  const RateDecision refused = Take(*limiter, "k", limit);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, milliseconds(334));
  EXPECT_EQ(refused.reset_after, milliseconds(334));
  clock.Advance(milliseconds(333));
  EXPECT_FALSE(Take(*limiter, "k", limit).allowed);
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(Take(*limiter, "k", limit).allowed);
}

TEST(RateLimiter, KeysAreIndependent) {
  ManualClock clock;
  auto limiter = MakeInProcessRateLimiter(clock);
  const RateLimit limit{.rate_per_second = 1, .burst = 2};
  EXPECT_TRUE(Take(*limiter, "login:ip:10.0.0.1", limit).allowed);
  EXPECT_TRUE(Take(*limiter, "login:ip:10.0.0.1", limit).allowed);
  EXPECT_FALSE(Take(*limiter, "login:ip:10.0.0.1", limit).allowed);
  EXPECT_TRUE(Take(*limiter, "login:ip:10.0.0.2", limit).allowed);
  EXPECT_TRUE(Take(*limiter, "login:account:a@example.com", limit).allowed);
}

TEST(RateLimiter, CostAboveOneTakesThatManyTokens) {
  ManualClock clock;
  auto limiter = MakeInProcessRateLimiter(clock);
  const RateLimit limit{.rate_per_second = 100, .burst = 1000};  // e.g. tokens per minute of an LLM
  RateDecision first = Take(*limiter, "k", limit, 700);
  EXPECT_TRUE(first.allowed);
  EXPECT_EQ(first.remaining, 300);
  EXPECT_EQ(first.reset_after, milliseconds(7000));
  RateDecision refused = Take(*limiter, "k", limit, 500);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 300);  // a refusal takes nothing
  EXPECT_EQ(refused.retry_after, milliseconds(2000));
  EXPECT_TRUE(Take(*limiter, "k", limit, 300).allowed);

  RateDecision never = Take(*limiter, "other", limit, 1001);  // more than the bucket holds
  EXPECT_FALSE(never.allowed);
  EXPECT_EQ(never.remaining, 1000);
  EXPECT_TRUE(Take(*limiter, "k2", limit, 0).allowed);  // cost 0 only reads
}

TEST(RateLimiter, ALimitChangeAppliesToExistingBuckets) {
  ManualClock clock;
  InProcessRateLimiter limiter(clock);
  EXPECT_TRUE(limiter.TakeNow("k", {.rate_per_second = 1, .burst = 10}).allowed);
  const RateDecision shrunk = limiter.TakeNow("k", {.rate_per_second = 1, .burst = 2});
  EXPECT_TRUE(shrunk.allowed);
  EXPECT_EQ(shrunk.limit, 2);
  EXPECT_EQ(shrunk.remaining, 1);
}

TEST(RateLimiter, InvalidLimitsAreBugs) {
  ManualClock clock;
  InProcessRateLimiter limiter(clock);
  EXPECT_THROW(limiter.TakeNow("k", {.rate_per_second = 0, .burst = 1}), std::invalid_argument);
  EXPECT_THROW(limiter.TakeNow("k", {.rate_per_second = 1, .burst = 0}), std::invalid_argument);
  EXPECT_THROW(limiter.TakeNow("k", {.rate_per_second = 1, .burst = 1}, -1), std::invalid_argument);
}

TEST(RateLimiter, ClockSteppingBackGrantsNothingExtra) {
  ManualClock clock;
  InProcessRateLimiter limiter(clock);
  const RateLimit limit{.rate_per_second = 1, .burst = 1};
  EXPECT_TRUE(limiter.TakeNow("k", limit).allowed);
  clock.Advance(milliseconds(-10'000));
  EXPECT_FALSE(limiter.TakeNow("k", limit).allowed);
  clock.Advance(milliseconds(10'500));
  EXPECT_FALSE(limiter.TakeNow("k", limit).allowed);
  clock.Advance(milliseconds(500));
  EXPECT_TRUE(limiter.TakeNow("k", limit).allowed);
}

TEST(RateLimiter, FullBucketsAreDroppedAndMemoryStaysBounded) {
  ManualClock clock;
  InProcessRateLimiter limiter(clock, 64 * 256);
  const RateLimit limit{.rate_per_second = 1, .burst = 5};
  for (int i = 0; i < 5'000; ++i) limiter.TakeNow("a:" + std::to_string(i), limit);
  EXPECT_EQ(limiter.BucketCount(), 5'000u);
  clock.Advance(milliseconds(1000));  // all full again: droppable
  for (int i = 0; i < 12'000; ++i) limiter.TakeNow("b:" + std::to_string(i), limit);
  EXPECT_EQ(limiter.BucketCount(), 12'000u);  // every shard swept once at least: no "a:" left

  // A flood of distinct keys that never refill: capped per shard.
  const std::size_t cap = 64 * 256;
  const RateLimit slow{.rate_per_second = 1e-6, .burst = 1};
  for (std::size_t i = 0; i < 3 * cap; ++i) limiter.TakeNow("c:" + std::to_string(i), slow);
  EXPECT_LE(limiter.BucketCount(), cap);
  EXPECT_GE(limiter.BucketCount(), cap / 2);
  // The newest keys are still limited.
  const std::string last = "c:" + std::to_string(3 * cap - 1);
  EXPECT_FALSE(limiter.TakeNow(last, slow).allowed);
}

TEST(RateLimiter, ConcurrentTakesNeverGrantMoreThanTheBucketHolds) {
  // A frozen clock: across 4 threads exactly `burst` requests pass.
  {
    ManualClock clock;
    InProcessRateLimiter limiter(clock);
    const RateLimit limit{.rate_per_second = 1, .burst = 100};
    std::atomic<int> allowed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 2000; ++i) allowed += Take(limiter, "shared", limit).allowed ? 1 : 0;
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(allowed.load(), 100);
  }
  // A real clock: never more than burst + rate × elapsed.
  {
    SystemClock clock;
    InProcessRateLimiter limiter(clock);
    const RateLimit limit{.rate_per_second = 2000, .burst = 50};
    std::atomic<int> allowed{0};
    const auto start = clock.Now();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 20'000; ++i) allowed += limiter.TakeNow("shared", limit).allowed ? 1 : 0;
      });
    }
    for (auto& thread : threads) thread.join();
    const double elapsed = std::chrono::duration<double>(clock.Now() - start).count();
    EXPECT_LE(allowed.load(), 50 + 2000 * elapsed + 1);
    EXPECT_GE(allowed.load(), 50);
  }
}

TEST(ParseRateLimit, AcceptsPerSecondMinuteAndHour) {
  auto api = ParseRateLimit("10/s", "20");
  ASSERT_TRUE(api);
  EXPECT_DOUBLE_EQ(api->rate_per_second, 10);
  EXPECT_DOUBLE_EQ(api->burst, 20);
  auto login = ParseRateLimit(" 5/m ", "");
  ASSERT_TRUE(login);
  EXPECT_DOUBLE_EQ(login->rate_per_second, 5.0 / 60);
  EXPECT_DOUBLE_EQ(login->burst, 5);  // no burst given: the count
  auto hourly = ParseRateLimit("100/h", "1");
  ASSERT_TRUE(hourly);
  EXPECT_DOUBLE_EQ(hourly->rate_per_second, 100.0 / 3600);
  EXPECT_DOUBLE_EQ(hourly->burst, 1);
  auto fractional = ParseRateLimit("0.5/s", "2");
  ASSERT_TRUE(fractional);
  EXPECT_DOUBLE_EQ(fractional->rate_per_second, 0.5);
}

TEST(ParseRateLimit, RejectsEverythingElse) {
  for (const char* rate : {"", "10", "10/", "/s", "10/d", "10/sec", "0/s", "-1/s", "+1/s", "1e3/s", "ten/s", "10/1s",
                           "10 /x", "inf/s", "nan/s", "0.5/s"}) {
    EXPECT_FALSE(ParseRateLimit(rate, "")) << rate;
  }
  for (const char* burst : {"0", "0.5", "-3", "x", "10x", "1e2"}) {
    EXPECT_FALSE(ParseRateLimit("10/s", burst)) << burst;
  }
}

TEST(TtlCache, ReturnsValuesUntilTheyExpire) {
  ManualClock clock;
  TtlCache<std::string> cache(clock, milliseconds(1000), 100);
  EXPECT_FALSE(cache.Get("k"));
  cache.Put("k", "v");
  cache.Put("short", "s", milliseconds(10));
  EXPECT_EQ(cache.Get("k"), "v");
  EXPECT_EQ(cache.Get("short"), "s");
  clock.Advance(milliseconds(10));
  EXPECT_FALSE(cache.Get("short"));
  clock.Advance(milliseconds(989));
  EXPECT_EQ(cache.Get("k"), "v");
  clock.Advance(milliseconds(1));
  EXPECT_FALSE(cache.Get("k"));
  EXPECT_EQ(cache.Size(), 0u);  // expired entries met by Get are dropped
}

TEST(TtlCache, PutReplacesAndRestartsTheLifetime) {
  ManualClock clock;
  TtlCache<int> cache(clock, milliseconds(100), 100);
  cache.Put("k", 1);
  clock.Advance(milliseconds(90));
  cache.Put("k", 2);
  clock.Advance(milliseconds(90));
  EXPECT_EQ(cache.Get("k"), 2);
  cache.Put("k", 3, milliseconds(0));  // a zero lifetime removes
  EXPECT_FALSE(cache.Get("k"));
}

TEST(TtlCache, EraseAndEraseIf) {
  ManualClock clock;
  TtlCache<std::string> cache(clock, milliseconds(1000), 100);
  cache.Put("key:a", "user-1");
  cache.Put("key:b", "user-1");
  cache.Put("key:c", "user-2");
  cache.Erase("key:a");
  cache.Erase("missing");
  EXPECT_FALSE(cache.Get("key:a"));
  cache.EraseIf([](std::string_view, const std::string& user) { return user == "user-1"; });
  EXPECT_FALSE(cache.Get("key:b"));
  EXPECT_EQ(cache.Get("key:c"), "user-2");
  cache.Clear();
  EXPECT_EQ(cache.Size(), 0u);
}

TEST(TtlCache, StaysWithinItsBoundKeepingTheLongestLived) {
  ManualClock clock;
  TtlCache<int> cache(clock, milliseconds(60'000), 160);
  for (int i = 0; i < 10'000; ++i) {
    cache.Put("k" + std::to_string(i), i);
    clock.Advance(milliseconds(1));
  }
  EXPECT_LE(cache.Size(), 160u);
  EXPECT_GE(cache.Size(), 100u);
  EXPECT_EQ(cache.Get("k9999"), 9999);  // the newest survive
  EXPECT_FALSE(cache.Get("k0"));

  // Entries put at the same instant (equal expiries) are evicted an eighth at a time too.
  TtlCache<int> same_instant(clock, milliseconds(60'000), 160);
  for (int i = 0; i < 1000; ++i) same_instant.Put("k" + std::to_string(i), i);
  EXPECT_LE(same_instant.Size(), 160u);
  EXPECT_GE(same_instant.Size(), 120u);

  // Expired entries make room before live ones are evicted.
  TtlCache<int> small(clock, milliseconds(10), 16);
  for (int i = 0; i < 16; ++i) small.Put("old" + std::to_string(i), i);
  clock.Advance(milliseconds(10));
  small.Put("new", 1, milliseconds(1000));
  EXPECT_EQ(small.Get("new"), 1);
  EXPECT_LE(small.Size(), 16u);
}

TEST(TtlCache, IsSafeUnderConcurrentUse) {
  SystemClock clock;
  TtlCache<int> cache(clock, milliseconds(1000), 256);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        const std::string key = "k" + std::to_string((i * 7 + t) % 500);
        cache.Put(key, i);
        if (auto value = cache.Get(key)) {
          EXPECT_GE(*value, 0);
        }
        if (i % 100 == 0) cache.EraseIf([](std::string_view, int v) { return v % 2 == 0; });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(cache.Size(), 256u);
}

// ---------------------------------------------------------------- LruCache

using Text = std::shared_ptr<const std::string>;

Text TextOf(std::size_t size, char fill = 'x') { return std::make_shared<const std::string>(size, fill); }

TEST(LruCache, ReturnsWhatWasPutAndCountsKeyAndValueBytes) {
  ManualClock clock;
  LruCache<Text> cache(clock, 1000, 1);
  EXPECT_FALSE(cache.Get("a"));
  EXPECT_TRUE(cache.Put("a", TextOf(10), milliseconds(1000)));
  const auto found = cache.Get("a");
  ASSERT_TRUE(found);
  EXPECT_EQ(**found, std::string(10, 'x'));
  EXPECT_EQ(cache.Bytes(), 11u);                                // "a" + 10
  EXPECT_TRUE(cache.Put("a", TextOf(20), milliseconds(1000)));  // replaced, not added
  EXPECT_EQ(cache.Bytes(), 21u);
  EXPECT_EQ(cache.Size(), 1u);
  cache.Erase("a");
  EXPECT_EQ(cache.Bytes(), 0u);
  EXPECT_FALSE(cache.Get("a"));
}

TEST(LruCache, EvictsTheLeastRecentlyUsedPastItsBytes) {
  ManualClock clock;
  LruCache<Text> cache(clock, 300, 1);  // one shard: a strict LRU order
  for (const char* key : {"a", "b", "c"}) EXPECT_TRUE(cache.Put(key, TextOf(99), milliseconds(1000)));
  EXPECT_EQ(cache.Bytes(), 300u);
  EXPECT_TRUE(cache.Get("a"));  // now b is the least recently used
  EXPECT_TRUE(cache.Put("d", TextOf(99), milliseconds(1000)));
  EXPECT_FALSE(cache.Get("b"));
  EXPECT_TRUE(cache.Get("a"));
  EXPECT_TRUE(cache.Get("c"));
  EXPECT_TRUE(cache.Get("d"));
  EXPECT_EQ(cache.Evictions(), 1u);
  // A big entry evicts as many as it needs, oldest first: a (used before c and d above).
  EXPECT_TRUE(cache.Put("e", TextOf(199), milliseconds(1000)));
  EXPECT_FALSE(cache.Get("a"));
  EXPECT_FALSE(cache.Get("c"));
  EXPECT_TRUE(cache.Get("d"));
  EXPECT_TRUE(cache.Get("e"));
  EXPECT_EQ(cache.Evictions(), 3u);
  EXPECT_LE(cache.Bytes(), 300u);
}

TEST(LruCache, RefusesAnEntryBiggerThanAShardAndZeroTtls) {
  ManualClock clock;
  LruCache<Text> cache(clock, 400, 4);  // 100 bytes a shard
  EXPECT_EQ(cache.ShardBudget(), 100u);
  EXPECT_FALSE(cache.Put("big", TextOf(98), milliseconds(1000)));  // 3 + 98 > 100
  EXPECT_TRUE(cache.Put("fit", TextOf(97), milliseconds(1000)));
  EXPECT_FALSE(cache.Put("fit", TextOf(1), milliseconds(0)));  // and the old value is gone
  EXPECT_FALSE(cache.Get("fit"));
  EXPECT_EQ(cache.Bytes(), 0u);
  EXPECT_EQ(cache.Evictions(), 0u);
}

TEST(LruCache, DropsExpiredEntriesWhenLookedUp) {
  ManualClock clock;
  metrics::Registry registry;
  metrics::Gauge& bytes = registry.AddGauge("bytes", "").WithLabels({});
  metrics::Counter& evictions = registry.AddCounter("evictions", "").WithLabels({});
  LruCache<Text> cache(clock, 1000, 1, LruCacheMetrics{.bytes = &bytes, .evictions = &evictions});
  cache.Put("short", TextOf(5), milliseconds(100));
  cache.Put("long", TextOf(5), milliseconds(1000));
  EXPECT_EQ(bytes.Value(), 19);  // "short" + 5, "long" + 5
  clock.Advance(milliseconds(99));
  EXPECT_TRUE(cache.Get("short"));
  clock.Advance(milliseconds(1));
  EXPECT_FALSE(cache.Get("short"));  // expires at exactly its ttl
  EXPECT_EQ(cache.Expirations(), 1u);
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_EQ(bytes.Value(), 9);
  EXPECT_TRUE(cache.Get("long"));
  clock.Advance(milliseconds(900));
  EXPECT_FALSE(cache.Get("long"));
  EXPECT_EQ(bytes.Value(), 0);
  EXPECT_EQ(evictions.Value(), 0u);  // expiries are not evictions
}

TEST(LruCache, KeepsSmallStructsWithTheirOwnWeight) {
  struct Answer {
    int status = 0;
    std::string body;
  };
  struct AnswerBytes {
    std::size_t operator()(const Answer& answer) const { return sizeof(int) + answer.body.size(); }
  };
  ManualClock clock;
  LruCache<Answer, AnswerBytes> cache(clock, 100, 1);
  EXPECT_TRUE(cache.Put("k", Answer{200, "ok"}, milliseconds(10)));
  EXPECT_EQ(cache.Bytes(), 1 + sizeof(int) + 2);
  EXPECT_EQ(cache.Get("k")->status, 200);
  cache.Clear();
  EXPECT_EQ(cache.Size(), 0u);
  EXPECT_EQ(cache.Bytes(), 0u);
}

TEST(LruCache, StaysWithinItsBytesUnderConcurrentUse) {
  SystemClock clock;
  metrics::Registry registry;
  metrics::Gauge& bytes = registry.AddGauge("bytes", "").WithLabels({});
  LruCache<Text> cache(clock, 16 * 1024, LruCache<Text>::kDefaultShards, LruCacheMetrics{.bytes = &bytes});
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        const int n = (i * 7 + t) % 300;
        const std::string key = "k" + std::to_string(n);
        // Each key always holds the same value, so any hit can be checked.
        cache.Put(key, TextOf(static_cast<std::size_t>(n % 50), static_cast<char>('a' + n % 26)),
                  milliseconds(n % 5 == 0 ? 1 : 60'000));
        if (auto value = cache.Get("k" + std::to_string((n * 13) % 300))) {
          const int m = (n * 13) % 300;
          if (**value != std::string(static_cast<std::size_t>(m % 50), static_cast<char>('a' + m % 26))) ++wrong;
        }
        if (i % 1000 == 0) cache.Erase(key);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(cache.Bytes(), 16u * 1024);
  EXPECT_EQ(bytes.Value(), static_cast<double>(cache.Bytes()));  // every change reached the gauge
  std::size_t counted = 0;
  for (int n = 0; n < 300; ++n) {
    // Expired entries still count until met: look every key up, then all that is left is live.
    (void)cache.Get("k" + std::to_string(n));
  }
  for (int n = 0; n < 300; ++n) {
    if (auto value = cache.Get("k" + std::to_string(n))) counted += 1 + std::to_string(n).size() + (*value)->size();
  }
  EXPECT_EQ(cache.Bytes(), counted);
}

}  // namespace
}  // namespace chatd::cache
