// Helpers for the gateway suites: events and keys to put in the store, a metric read off
// the registry's exposition text, polling with a deadline, and a Database that can be
// taken down (to test what the usage recorder does when the database is unavailable).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "core/ids.hpp"
#include "core/metrics.hpp"
#include "store/accounts_repository.hpp"
#include "store/database.hpp"
#include "store/usage_repository.hpp"

namespace chatd::testing {

/// The value of an unlabelled sample `name` (or `name{labels}` as rendered); -1 when absent.
inline double MetricValue(const metrics::Registry& registry, std::string_view sample) {
  const std::string text = registry.Render();
  std::size_t at = 0;
  while ((at = text.find(sample, at)) != std::string::npos) {
    const bool line_start = at == 0 || text[at - 1] == '\n';
    const std::size_t after = at + sample.size();
    if (line_start && after < text.size() && text[after] == ' ') return std::stod(text.substr(after + 1));
    at = after;
  }
  return -1;
}

/// Polls `done` until it holds or `timeout` passes; true when it held.
inline bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline store::UsageEventRecord UsageRow(std::string user_id, std::string key_id, std::string model, std::int64_t prompt,
                                        std::int64_t completion, double cost, std::string created_at,
                                        std::string status = "ok") {
  store::UsageEventRecord row;
  row.id = NewUuidV7();
  row.user_id = std::move(user_id);
  row.api_key_id = std::move(key_id);
  row.model = std::move(model);
  row.provider = "demo";
  row.prompt_tokens = prompt;
  row.completion_tokens = completion;
  row.cost = cost;
  row.latency_ms = 120;
  row.ttft_ms = 30;
  row.status = std::move(status);
  row.created_at = std::move(created_at);
  return row;
}

/// A database whose every call fails with `failure` while `down` is set; counts the
/// transactions asked for.
class FlakyDatabase final : public store::Database {
 public:
  explicit FlakyDatabase(store::Database& real) : real_(real) {}

  std::atomic<bool> down{false};
  std::atomic<ErrorCode> failure{ErrorCode::kUnavailable};
  std::atomic<int> begins{0};

  store::Dialect dialect() const override { return real_.dialect(); }
  Task<Expected<store::Result>> Execute(std::string_view sql, store::Params params = {}) override {
    if (down.load()) co_return Failure();
    co_return co_await real_.Execute(sql, std::move(params));
  }
  Task<Expected<std::unique_ptr<store::Transaction>>> Begin() override {
    begins.fetch_add(1);
    if (down.load()) co_return Failure();
    co_return co_await real_.Begin();
  }
  Task<Expected<void>> Ping() override { return real_.Ping(); }
  Task<Expected<int>> Migrate() override { return real_.Migrate(); }
  void Close() override {}
  store::PoolStats Stats() const override { return real_.Stats(); }

 private:
  Unexpected Failure() const { return MakeError(failure.load(), "the database is down (test)"); }

  store::Database& real_;
};

}  // namespace chatd::testing
