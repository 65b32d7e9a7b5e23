#include "core/metrics.hpp"

#include <thread>

#include <gtest/gtest.h>

namespace chatd::metrics {
namespace {

TEST(Registry, RendersCountersWithLabelsInExpositionFormat) {
  Registry registry;
  auto& requests = registry.AddCounter("http_requests_total", "Requests.", {"method", "route", "status"});
  requests.WithLabels({"GET", "/health", "200"}).Inc(3);
  const std::string text = registry.Render();
  EXPECT_NE(text.find("# TYPE http_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 3\n"), std::string::npos);
}

TEST(Registry, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  auto& latency = registry.AddHistogram("latency_seconds", "Latency.", {"route"}, {0.1, 1});
  auto& h = latency.WithLabels({"/x"});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  const std::string text = registry.Render();
  EXPECT_NE(text.find("latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_sum{route=\"/x\"} 5.55\n"), std::string::npos);
  EXPECT_NE(text.find("latency_seconds_count{route=\"/x\"} 3\n"), std::string::npos);
}

TEST(Registry, LabelValuesAreEscaped) {
  Registry registry;
  registry.AddGauge("g", "G.", {"name"}).WithLabels({"a\"b\\c\nd"}).Set(1);
  EXPECT_NE(registry.Render().find(R"(g{name="a\"b\\c\nd"} 1)"), std::string::npos);
}

TEST(Counter, ConcurrentIncrementsAreNotLost) {
  Counter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) counter.Inc();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.Value(), 400000u);
}

TEST(ProcessMetrics, ReportsPositiveResidentMemoryAndOpenFds) {
  std::string out;
  AppendProcessMetrics(out);
  EXPECT_NE(out.find("process_resident_memory_bytes "), std::string::npos);
  EXPECT_EQ(out.find("process_resident_memory_bytes 0\n"), std::string::npos);
  EXPECT_NE(out.find("process_open_fds "), std::string::npos);
  EXPECT_NE(out.find("process_cpu_seconds_total "), std::string::npos);
}

}  // namespace
}  // namespace chatd::metrics
