// Rate limits as token buckets: `burst` tokens at most, refilled at `rate_per_second`.
// Behind an interface so instances can share buckets through Redis later; the in-process
// implementation shards its buckets so no single lock is shared by all requests.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>

#include "core/asio.hpp"
#include "core/clock.hpp"

namespace chatd::cache {

struct RateLimit {
  double rate_per_second = 10;
  double burst = 20;
};

struct RateDecision {
  bool allowed = true;
  double limit = 0;                    // the bucket's size (X-RateLimit-Limit)
  double remaining = 0;                // whole tokens left after this call (X-RateLimit-Remaining)
  std::chrono::milliseconds reset_after{0};  // until the bucket is full again (X-RateLimit-Reset)
  std::chrono::milliseconds retry_after{0};  // when denied: until `cost` tokens are back (Retry-After)
};

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  /// Takes `cost` tokens from bucket `key` if it holds them. Thread-safe. The in-process
  /// implementation completes without suspending; a shared one may do I/O.
  virtual Task<RateDecision> Take(std::string_view key, const RateLimit& limit, double cost = 1) = 0;
};

/// Buckets in this process's memory, sharded by key; idle buckets are dropped once full.
std::unique_ptr<RateLimiter> MakeInProcessRateLimiter(const Clock& clock);

}  // namespace chatd::cache
