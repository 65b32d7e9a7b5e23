// A Prometheus metrics registry built for hot paths: a metric is a few relaxed atomics, and
// looking up a labelled child (the only step that takes a lock) happens once, at setup or
// on the first use of a label combination, after which callers keep the reference.
// Rendering walks every family under its own lock and never blocks writers.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace chatd::metrics {

class Counter {
 public:
  void Inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  /// Cumulative bucket counts (one per bound, then +Inf), plus sum and count.
  void Snapshot(std::vector<std::uint64_t>& cumulative, double& sum, std::uint64_t& count) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

/// Latency buckets in seconds, from 0.5 ms to 60 s.
const std::vector<double>& DefaultLatencyBuckets();

enum class Type { kCounter, kGauge, kHistogram };

template <typename Metric>
class Family;

class Registry;

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, Type type, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  virtual void Render(std::string& out) const = 0;

 protected:
  void RenderHeader(std::string& out) const;
  std::string LabelText(const std::vector<std::string>& values, std::string_view extra_key = {},
                        std::string_view extra_value = {}) const;

  std::string name_;
  std::string help_;
  Type type_;
  std::vector<std::string> label_names_;
};

template <typename Metric>
class Family final : public FamilyBase {
 public:
  Family(std::string name, std::string help, Type type, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        bounds_(std::move(bounds)) {}

  /// The child for these label values (in label_names order). The reference stays valid
  /// for the registry's lifetime: look it up once and keep it on hot paths. Finding an
  /// existing child copies nothing (the values are compared as views).
  Metric& WithLabels(std::initializer_list<std::string_view> values);
  void Render(std::string& out) const override;

 private:
  // Orders label value lists, stored (strings) or looked up (views), the same way.
  struct ValuesLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                          [](std::string_view x, std::string_view y) { return x < y; });
    }
  };

  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>, ValuesLess> children_;
  std::vector<double> bounds_;
};

class Registry {
 public:
  Family<Counter>& AddCounter(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(std::string name, std::string help, std::vector<std::string> labels,
                                  std::vector<double> bounds = DefaultLatencyBuckets());
  /// A function that appends complete exposition text (HELP, TYPE, samples) at scrape
  /// time: for values read from elsewhere, like process stats or a pool's size.
  void AddCollector(std::function<void(std::string&)> collector);

  /// The Prometheus text exposition format, version 0.0.4.
  std::string Render() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

/// Appends one gauge with HELP/TYPE lines; for collectors.
void AppendGauge(std::string& out, std::string_view name, std::string_view help, double value);
/// Appends one counter with HELP/TYPE lines; for collectors.
void AppendCounter(std::string& out, std::string_view name, std::string_view help, double value);

/// process_* metrics read from /proc/self (CPU, RSS, virtual memory, fds, start time).
void AppendProcessMetrics(std::string& out);

}  // namespace chatd::metrics
