// The response cache on its own: which requests are eligible, what the key covers, the
// per-key opt-out, what is stored (and what not) and for how long.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gateway/completion_request.hpp"
#include "gateway/response_cache.hpp"
#include "run_task.hpp"

namespace chatd::gateway {
namespace {

using chatd::testing::RunTask;
using std::chrono::milliseconds;

PreparedCompletion Prepared(std::string_view body) {
  auto prepared = PrepareCompletion(body);
  EXPECT_TRUE(prepared) << body;
  return prepared ? *prepared : PreparedCompletion{};
}

bool Eligible(std::string_view body) { return CacheEligible(Prepared(body)); }

constexpr std::string_view kZero = R"({"model":"demo","temperature":0,"messages":[{"role":"user","content":"hi"}]})";

TEST(ResponseCacheEligibility, OnlyWholeDeterministicAnswers) {
  EXPECT_TRUE(Eligible(kZero));
  EXPECT_TRUE(Eligible(
      R"({"model":"demo","temperature":0.0,"n":1,"stream":false,"messages":[{"role":"user","content":"hi"}]})"));
  // Temperature must be given, and be 0.
  EXPECT_FALSE(Eligible(R"({"model":"demo","messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_FALSE(Eligible(R"({"model":"demo","temperature":null,"messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_FALSE(Eligible(R"({"model":"demo","temperature":0.5,"messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_FALSE(
      Eligible(R"({"model":"demo","temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]})"));
  EXPECT_FALSE(Eligible(R"({"model":"demo","temperature":0,"n":2,"messages":[{"role":"user","content":"hi"}]})"));
}

TEST(ResponseCacheKey, CoversScopeModelAndTheExactBody) {
  const Caller key_a{.user_id = "u1", .api_key_id = "ka"};
  const Caller key_b{.user_id = "u1", .api_key_id = "kb"};
  const Caller session{.user_id = "u1"};
  const std::string base = ResponseCacheKey(key_a, "demo", kZero);
  EXPECT_EQ(base.size(), 32u);
  EXPECT_EQ(base, ResponseCacheKey(key_a, "demo", kZero));
  EXPECT_NE(base, ResponseCacheKey(key_b, "demo", kZero));    // the same user's other key
  EXPECT_NE(base, ResponseCacheKey(session, "demo", kZero));  // the user's session
  EXPECT_NE(base, ResponseCacheKey(key_a, "demo-slow", kZero));
  EXPECT_NE(base, ResponseCacheKey(key_a, "demo", std::string(kZero) + " "));  // one byte more
  // Length prefixes: moving bytes from the model to the body is another key.
  EXPECT_NE(ResponseCacheKey(key_a, "ab", "c"), ResponseCacheKey(key_a, "a", "bc"));
  // A key id equal to a user id is still another scope.
  EXPECT_NE(ResponseCacheKey(Caller{.user_id = "x", .api_key_id = "same"}, "demo", kZero),
            ResponseCacheKey(Caller{.user_id = "same"}, "demo", kZero));
}

class ResponseCacheTest : public ::testing::Test {
 protected:
  ResponseCache Make(ResponseCacheConfig config) {
    return ResponseCache(
        config,
        [this](std::string key_id) -> Task<Expected<bool>> {
          asked.push_back(key_id);
          if (key_id == "gone") co_return MakeError(ErrorCode::kNotFound, "no such key");
          co_return key_id != "opted-out";
        },
        clock, registry);
  }

  CacheLookup Find(ResponseCache& cache, const Caller& caller, std::string_view body = kZero) {
    const PreparedCompletion prepared = Prepared(body);
    return RunTask(cache.Find(caller, "demo", prepared, body));
  }

  ManualClock clock;
  metrics::Registry registry;
  std::vector<std::string> asked;
  ResponseCacheConfig on{.enabled = true, .ttl = milliseconds(1000), .max_bytes = 4 * 1024 * 1024};
  Caller caller{.user_id = "u1", .api_key_id = "k1"};
};

TEST_F(ResponseCacheTest, MissesThenHitsUntilTheTtlEnds) {
  ResponseCache cache = Make(on);
  CacheLookup first = Find(cache, caller);
  EXPECT_EQ(first.status, CacheStatus::kMiss);
  EXPECT_FALSE(first.body);
  cache.Store(first, R"({"id":"chatcmpl-1"})");
  EXPECT_EQ(cache.Bytes(), 32u + 19u);
  CacheLookup second = Find(cache, caller);
  ASSERT_EQ(second.status, CacheStatus::kHit);
  EXPECT_EQ(*second.body, R"({"id":"chatcmpl-1"})");
  cache.Store(second, "not stored: only a miss stores");
  EXPECT_EQ(*Find(cache, caller).body, R"({"id":"chatcmpl-1"})");
  clock.Advance(milliseconds(1000));
  EXPECT_EQ(Find(cache, caller).status, CacheStatus::kMiss);
  EXPECT_EQ(asked, std::vector<std::string>(4, "k1"));

  const std::string exposition = registry.Render();
  EXPECT_NE(exposition.find("gateway_cache_hits_total 2"), std::string::npos) << exposition;
  EXPECT_NE(exposition.find("gateway_cache_misses_total 2"), std::string::npos) << exposition;
  EXPECT_NE(exposition.find("gateway_cache_bytes 0"), std::string::npos) << exposition;  // the expired one left
  EXPECT_NE(exposition.find("gateway_cache_evictions_total 0"), std::string::npos) << exposition;
}

TEST_F(ResponseCacheTest, BypassesWhenOffIneligibleOrOptedOut) {
  ResponseCache off = Make(ResponseCacheConfig{});
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(Find(off, caller).status, CacheStatus::kBypass);
  ResponseCache cache = Make(on);
  EXPECT_EQ(Find(cache, caller, R"({"model":"demo","messages":[{"role":"user","content":"hi"}]})").status,
            CacheStatus::kBypass);
  EXPECT_TRUE(asked.empty());  // the key is asked about only for eligible requests
  EXPECT_EQ(Find(cache, Caller{.user_id = "u1", .api_key_id = "opted-out"}).status, CacheStatus::kBypass);
  EXPECT_EQ(Find(cache, Caller{.user_id = "u1", .api_key_id = "gone"}).status, CacheStatus::kBypass);
  // A session has no key to ask: its user's scope is used.
  EXPECT_EQ(Find(cache, Caller{.user_id = "u1"}).status, CacheStatus::kMiss);
  EXPECT_EQ(asked, (std::vector<std::string>{"opted-out", "gone"}));
  const std::string exposition = registry.Render();
  EXPECT_NE(exposition.find("gateway_cache_misses_total 1"), std::string::npos) << exposition;
}

TEST_F(ResponseCacheTest, KeepsNoAnswerAboveTheEntryLimitAndEvictsPastItsBytes) {
  ResponseCacheConfig small = on;
  small.max_bytes = 2 * 1024;
  small.max_entry_bytes = 1024;
  ResponseCache cache = Make(small);
  CacheLookup big = Find(cache, caller);
  cache.Store(big, std::string(1025, 'x'));
  EXPECT_EQ(cache.Bytes(), 0u);
  EXPECT_EQ(Find(cache, caller).status, CacheStatus::kMiss);
  // Three answers of ~1 KiB in 2 KiB (one shard): the oldest goes.
  std::vector<CacheLookup> lookups;
  for (const char* content : {"one", "two", "three"}) {
    const std::string body =
        std::string(R"({"model":"demo","temperature":0,"messages":[{"role":"user","content":")") + content + R"("}]})";
    lookups.push_back(Find(cache, caller, body));
    ASSERT_EQ(lookups.back().status, CacheStatus::kMiss);
    cache.Store(lookups.back(), std::string(900, 'x'));
  }
  EXPECT_LE(cache.Bytes(), 2u * 1024);
  EXPECT_NE(registry.Render().find("gateway_cache_evictions_total 1"), std::string::npos) << registry.Render();
}

}  // namespace
}  // namespace chatd::gateway
