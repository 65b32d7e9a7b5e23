// Micro-benchmarks of per-request hot paths. Run: build/release/bench/micro_bench
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "cache/in_process_rate_limiter.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/metrics.hpp"
#include "http/client_ip.hpp"
#include "http/router.hpp"

namespace chatd {
namespace {

void BM_RouterMatchWithParams(benchmark::State& state) {
  http::Router router;
  auto noop = [](http::Request&) -> Task<http::Response> { co_return http::Response::NoContent(); };
  for (const char* pattern : {"/health", "/ready", "/metrics", "/api/v1/conversations", "/api/v1/conversations/{id}",
                              "/api/v1/conversations/{id}/messages", "/api/v1/conversations/{id}/messages/{mid}",
                              "/api/v1/users/me", "/v1/chat/completions", "/v1/models", "/v1/models/{id}"}) {
    router.Add(http::Method::kGet, pattern, noop);
  }
  for (auto _ : state) {
    auto match = router.Match(http::Method::kGet, "/api/v1/conversations/0192f1e0-7c1a-7abc-8def-0123456789ab/messages");
    benchmark::DoNotOptimize(match);
  }
}
BENCHMARK(BM_RouterMatchWithParams);

void BM_CounterInc(benchmark::State& state) {
  metrics::Counter counter;
  for (auto _ : state) counter.Inc();
  benchmark::DoNotOptimize(counter.Value());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  metrics::Histogram histogram(metrics::DefaultLatencyBuckets());
  double v = 0.0001;
  for (auto _ : state) {
    histogram.Observe(v);
    v = v < 10 ? v * 1.7 : 0.0001;
  }
}
BENCHMARK(BM_HistogramObserve);

void BM_NewUuidV7(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(NewUuidV7());
}
BENCHMARK(BM_NewUuidV7);

void BM_JsonWriteErrorBody(benchmark::State& state) {
  for (auto _ : state) {
    JsonWriter json;
    json.BeginObject().Key("error").BeginObject().Field("message", "no route for this path").Field("type", "not_found_error");
    json.Field("code", "not_found").Key("param").Null().EndObject().EndObject();
    benchmark::DoNotOptimize(json.str());
  }
}
BENCHMARK(BM_JsonWriteErrorBody);

// One limiter shared by all benchmark threads, as the I/O threads share it. Realistic
// limits (10/s, burst 20): most calls are refusals after the burst, which cost the same.
cache::InProcessRateLimiter& SharedLimiter() {
  static SystemClock clock;
  static cache::InProcessRateLimiter limiter(clock);
  return limiter;
}

const std::vector<std::string>& ManyKeys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (int i = 0; i < 100'000; ++i) out.push_back(fmt::format("api:0192f1e0-7c1a-7abc-8def-{:012}", i));
    return out;
  }();
  return keys;
}

// Take through its coroutine, as a handler calls it, cycling over state.range(0) keys (one
// key: every thread on one bucket; 100k keys: ~20 MB of buckets, so mostly cache misses).
void BM_RateLimiterTake(benchmark::State& state) {
  auto& limiter = SharedLimiter();
  const auto& keys = ManyKeys();
  const auto key_count = static_cast<std::size_t>(state.range(0));
  const cache::RateLimit limit{.rate_per_second = 10, .burst = 20};
  asio::io_context io(1);
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919 % key_count;
        for (auto _ : state) {
          const std::string& key = keys[i++ % key_count];
          auto decision = co_await limiter.Take(key, limit);
          benchmark::DoNotOptimize(decision);
        }
      },
      asio::detached);
  io.run();
}
BENCHMARK(BM_RateLimiterTake)->ArgName("keys")->Arg(1)->Arg(1000)->Arg(100'000)->Threads(1)->Threads(2);

// The same without the coroutine: what the bucket itself costs.
void BM_RateLimiterTakeNow(benchmark::State& state) {
  auto& limiter = SharedLimiter();
  const auto& keys = ManyKeys();
  const auto key_count = static_cast<std::size_t>(state.range(0));
  const cache::RateLimit limit{.rate_per_second = 10, .burst = 20};
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919 % key_count;
  for (auto _ : state) {
    const std::string& key = keys[i++ % key_count];
    benchmark::DoNotOptimize(limiter.TakeNow(key, limit));
  }
}
BENCHMARK(BM_RateLimiterTakeNow)->ArgName("keys")->Arg(1)->Arg(1000)->Arg(100'000)->Threads(1)->Threads(2);

void BM_ClientAddressTrustedChain(benchmark::State& state) {
  auto middleware =
      http::MakeClientAddress(*http::CidrSet::Parse("10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8"));
  http::Request request;
  request.remote_address = "10.0.0.1";
  request.headers = {{"Host", "api.example.com"},
                     {"User-Agent", "bench"},
                     {"X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.1.2.3, 10.0.0.2"}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(middleware->OnRequest(request));
    benchmark::DoNotOptimize(request.client_address.data());
  }
}
BENCHMARK(BM_ClientAddressTrustedChain);

}  // namespace
}  // namespace chatd

BENCHMARK_MAIN();
