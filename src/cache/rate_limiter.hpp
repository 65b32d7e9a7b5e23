// Rate limits as token buckets: `burst` tokens at most, refilled at `rate_per_second`.
// Behind an interface so instances can share buckets through Redis later; the in-process
// implementation shards its buckets so no single lock is shared by all requests.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

#include "core/asio.hpp"
#include "core/clock.hpp"

namespace chatd::cache {

/// Both fields must be positive (ParseRateLimit guarantees it); a limiter throws
/// std::invalid_argument otherwise, as that is a wiring bug.
struct RateLimit {
  double rate_per_second = 10;
  double burst = 20;
};

struct RateDecision {
  bool allowed = true;
  double limit = 0;                          // the bucket's size (X-RateLimit-Limit)
  double remaining = 0;                      // whole tokens left after this call (X-RateLimit-Remaining)
  std::chrono::milliseconds reset_after{0};  // until the bucket is full again (X-RateLimit-Reset)
  std::chrono::milliseconds retry_after{0};  // when denied: until `cost` tokens are back (Retry-After)
};

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  /// Takes `cost` tokens from bucket `key` if it holds them. Thread-safe. The in-process
  /// implementation completes without suspending; a shared one may do I/O. `key` and
  /// `limit` must outlive the co_await (they do when passed in the co_await expression).
  /// A cost above the burst is never granted; its retry_after is the time until full.
  virtual Task<RateDecision> Take(std::string_view key, const RateLimit& limit, double cost = 1) = 0;
};

/// Buckets in this process's memory, sharded by key; idle buckets are dropped once full.
/// Memory is bounded: past 262144 buckets (4096 per shard), the buckets closest to full
/// are dropped first, which can only grant their keys a few tokens early.
std::unique_ptr<RateLimiter> MakeInProcessRateLimiter(const Clock& clock);

/// Parses settings such as RATE_LIMIT_API=10/s with RATE_LIMIT_API_BURST=20: `rate` is
/// "N/s", "N/m" or "N/h" (N a positive number), `burst` a number >= 1, or empty for N
/// (so "5/m" alone allows 5 at once, refilled over a minute). Surrounding spaces are
/// ignored. nullopt when either is invalid.
std::optional<RateLimit> ParseRateLimit(std::string_view rate, std::string_view burst);

}  // namespace chatd::cache
