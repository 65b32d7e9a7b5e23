// The operator's endpoints: /health (component checks), /ready (startup finished) and
// /metrics (Prometheus). Components register a check; /health runs them all.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/metrics.hpp"
#include "http/message.hpp"

namespace chatd::api {

struct HealthCheck {
  std::string name;  // "database", later "redis", "workers"
  /// True when the component works. Must bound its own wait (a few seconds at most).
  std::function<Task<bool>()> check;
};

class Operations {
 public:
  Operations(std::vector<HealthCheck> checks, metrics::Registry& metrics)
      : checks_(std::move(checks)), metrics_(metrics) {}

  /// Called once startup (migrations) is complete; /ready answers 200 from then on.
  void MarkReady() { ready_.store(true, std::memory_order_release); }

  Task<http::Response> Health(http::Request& request);
  Task<http::Response> Ready(http::Request& request);
  Task<http::Response> Metrics(http::Request& request);

 private:
  std::vector<HealthCheck> checks_;
  metrics::Registry& metrics_;
  std::atomic<bool> ready_{false};
};

}  // namespace chatd::api
