// What one /v1 request cost, and where that record goes.
//
// The gateway builds one UsageEvent per request — successful, failed, rejected after
// admission, or cancelled by the client — once the response is over, and hands it to the
// UsageSink. Recording must never slow the request path: implementations buffer and write
// in the background (batched, flushed on shutdown); the default sink drops the events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/time.hpp"

namespace chatd::gateway {

/// Tokens of one request. For a cancelled or failed stream: what was generated so far.
struct TokenUsage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;  // prompt tokens the upstream served from its cache
  /// True when the upstream did not report usage and the gateway estimated it.
  bool estimated = false;
};

/// How the request ended (usage_events.status).
enum class UsageStatus {
  kOk,         // the response was complete
  kError,      // the upstream or chatd failed (before or during the response)
  kCancelled,  // the client went away before the end; the upstream call was aborted
  kCached,     // answered from the gateway's response cache: no upstream call, no tokens
};

inline std::string_view UsageStatusName(UsageStatus status) {
  switch (status) {
    case UsageStatus::kOk: return "ok";
    case UsageStatus::kError: return "error";
    case UsageStatus::kCancelled: return "cancelled";
    case UsageStatus::kCached:
      return "cached";
  }
  return "error";
}

/// One row of usage_events.
struct UsageEvent {
  std::string api_key_id;  // empty when the caller used an access token
  std::string user_id;
  std::string model;     // the public model name the request resolved to
  std::string provider;  // llm::ModelInfo::provider
  TokenUsage usage;
  double cost = 0;  // USD, from the model's prices per 1M tokens (0 when unknown)
  std::int64_t latency_ms = 0;           // request received -> response ended
  std::optional<std::int64_t> ttft_ms;   // request received -> first token (streams only)
  UsageStatus status = UsageStatus::kOk;
  SystemTime created_at;                 // when the request was received
};

class UsageSink {
 public:
  virtual ~UsageSink() = default;

  /// Takes one event. Called on an I/O thread, once per /v1 request that reached
  /// admission, after its response ended (a cache hit included). Must not block or suspend: buffer and return.
  /// Thread-safe: called from every I/O thread.
  virtual void Record(UsageEvent event) = 0;
};

/// The default: keeps nothing (until a recording sink is wired in).
class DiscardUsageSink final : public UsageSink {
 public:
  void Record(UsageEvent) override {}
};

}  // namespace chatd::gateway
