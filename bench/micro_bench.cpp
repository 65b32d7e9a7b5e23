// Micro-benchmarks of per-request hot paths. Run: build/release/bench/micro_bench
#include <benchmark/benchmark.h>

#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/metrics.hpp"
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

}  // namespace
}  // namespace chatd

BENCHMARK_MAIN();
