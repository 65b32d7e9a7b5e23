#include "core/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace chatd::metrics {

namespace {

void AppendNumber(std::string& out, double value) {
  if (value == static_cast<double>(static_cast<std::int64_t>(value)) && value < 9.0e15 && value > -9.0e15) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<std::int64_t>(value));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

void AppendLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
}

constexpr std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

void Histogram::Snapshot(std::vector<std::uint64_t>& cumulative, double& sum, std::uint64_t& count) const {
  cumulative.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    cumulative[i] = running;
  }
  count = running;
  sum = sum_.load(std::memory_order_relaxed);
}

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,   0.5,   1,      2.5,   5,    10,   30,    60};
  return buckets;
}

void FamilyBase::RenderHeader(std::string& out) const {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name_, help_, name_, TypeName(type_));
}

std::string FamilyBase::LabelText(const std::vector<std::string>& values, std::string_view extra_key,
                                  std::string_view extra_value) const {
  if (label_names_.empty() && extra_key.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < label_names_.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += label_names_[i];
    out += "=\"";
    AppendLabelValue(out, i < values.size() ? values[i] : std::string_view{});
    out.push_back('"');
  }
  if (!extra_key.empty()) {
    if (!label_names_.empty()) out.push_back(',');
    out += extra_key;
    out += "=\"";
    out += extra_value;
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

template <typename Metric>
Metric& Family<Metric>::WithLabels(std::initializer_list<std::string_view> values) {
  std::lock_guard lock(mutex_);
  if (const auto found = children_.find(values); found != children_.end()) return *found->second;
  auto& slot = children_[std::vector<std::string>(values.begin(), values.end())];
  if constexpr (std::is_same_v<Metric, Histogram>) {
    slot = std::make_unique<Histogram>(bounds_);
  } else {
    slot = std::make_unique<Metric>();
  }
  return *slot;
}

template <typename Metric>
void Family<Metric>::Render(std::string& out) const {
  RenderHeader(out);
  std::lock_guard lock(mutex_);
  for (const auto& [labels, metric] : children_) {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      std::vector<std::uint64_t> cumulative;
      double sum = 0;
      std::uint64_t count = 0;
      metric->Snapshot(cumulative, sum, count);
      const auto& bounds = metric->bounds();
      for (std::size_t i = 0; i <= bounds.size(); ++i) {
        const std::string le = i < bounds.size() ? fmt::format("{}", bounds[i]) : "+Inf";
        fmt::format_to(std::back_inserter(out), "{}_bucket{} {}\n", name_, LabelText(labels, "le", le),
                       cumulative[i]);
      }
      fmt::format_to(std::back_inserter(out), "{}_sum{} ", name_, LabelText(labels));
      AppendNumber(out, sum);
      fmt::format_to(std::back_inserter(out), "\n{}_count{} {}\n", name_, LabelText(labels), count);
    } else {
      out += name_;
      out += LabelText(labels);
      out.push_back(' ');
      AppendNumber(out, static_cast<double>(metric->Value()));
      out.push_back('\n');
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Family<Counter>& Registry::AddCounter(std::string name, std::string help, std::vector<std::string> labels) {
  auto family = std::make_unique<Family<Counter>>(std::move(name), std::move(help), Type::kCounter, std::move(labels));
  auto& ref = *family;
  std::lock_guard lock(mutex_);
  families_.push_back(std::move(family));
  return ref;
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help, std::vector<std::string> labels) {
  auto family = std::make_unique<Family<Gauge>>(std::move(name), std::move(help), Type::kGauge, std::move(labels));
  auto& ref = *family;
  std::lock_guard lock(mutex_);
  families_.push_back(std::move(family));
  return ref;
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help, std::vector<std::string> labels,
                                          std::vector<double> bounds) {
  auto family = std::make_unique<Family<Histogram>>(std::move(name), std::move(help), Type::kHistogram,
                                                    std::move(labels), std::move(bounds));
  auto& ref = *family;
  std::lock_guard lock(mutex_);
  families_.push_back(std::move(family));
  return ref;
}

void Registry::AddCollector(std::function<void(std::string&)> collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Render() const {
  std::string out;
  out.reserve(16 * 1024);
  std::lock_guard lock(mutex_);
  for (const auto& family : families_) family->Render(out);
  for (const auto& collector : collectors_) collector(out);
  return out;
}

void AppendGauge(std::string& out, std::string_view name, std::string_view help, double value) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} gauge\n{} ", name, help, name, name);
  AppendNumber(out, value);
  out.push_back('\n');
}

void AppendCounter(std::string& out, std::string_view name, std::string_view help, double value) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n{} ", name, help, name, name);
  AppendNumber(out, value);
  out.push_back('\n');
}

void AppendProcessMetrics(std::string& out) {
  static const long ticks = sysconf(_SC_CLK_TCK);
  static const long page = sysconf(_SC_PAGESIZE);
  static const double boot_time = [] {
    std::ifstream stat("/proc/stat");
    std::string key;
    double value = 0;
    while (stat >> key) {
      if (key == "btime") { stat >> value; break; }
    }
    return value;
  }();

  double cpu_seconds = 0, start_seconds = 0, virtual_bytes = 0, resident_bytes = 0;
  if (std::FILE* file = std::fopen("/proc/self/stat", "r")) {
    char buffer[1024];
    const std::size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, file);
    std::fclose(file);
    buffer[n] = '\0';
    // Fields after the ")" that closes the command name; utime is field 14 overall.
    if (const char* p = std::strrchr(buffer, ')')) {
      std::istringstream fields(p + 2);
      std::string skip;
      for (int i = 3; i <= 13; ++i) fields >> skip;
      unsigned long long utime = 0, stime = 0, starttime = 0, vsize = 0;
      long long rss = 0;
      fields >> utime >> stime;
      for (int i = 16; i <= 21; ++i) fields >> skip;
      fields >> starttime >> vsize >> rss;
      cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(ticks);
      start_seconds = boot_time + static_cast<double>(starttime) / static_cast<double>(ticks);
      virtual_bytes = static_cast<double>(vsize);
      resident_bytes = static_cast<double>(rss) * static_cast<double>(page);
    }
  }
  double open_fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++open_fds;
    }
    closedir(dir);
    open_fds -= 1;  // the directory handle itself
  }
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);

  AppendCounter(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu_seconds);
  AppendGauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", resident_bytes);
  AppendGauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", virtual_bytes);
  AppendGauge(out, "process_open_fds", "Number of open file descriptors.", open_fds);
  AppendGauge(out, "process_max_fds", "Maximum number of open file descriptors.", static_cast<double>(limit.rlim_cur));
  AppendGauge(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
              start_seconds);
}

}  // namespace chatd::metrics
