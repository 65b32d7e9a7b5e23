// The in-process RateLimiter. Buckets live in 64 shards, each a mutex and a hash map, so
// two requests contend only when their keys share a shard; a Take is one hash, one lock
// and a little arithmetic: ~65 ns when the bucket is in cache, ~270 ns when it is not
// (bench/micro_bench.cpp, BM_RateLimiterTakeNow).
//
// Buckets refill lazily: a bucket stores its tokens and when it last changed, and each Take
// first adds elapsed × rate (capped at the burst). A bucket that would be full again is
// indistinguishable from a missing one, so sweeps drop those; a shard sweeps when it has
// doubled since its last sweep (amortised O(1) per Take). When a flood of distinct keys
// fills a shard to its cap anyway, the eighth of its buckets closest to full is dropped:
// the least generous way to stay bounded.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cache/rate_limiter.hpp"
#include "cache/string_hash.hpp"

namespace chatd::cache {

class InProcessRateLimiter final : public RateLimiter {
 public:
  static constexpr std::size_t kShards = 64;
  static constexpr std::size_t kDefaultMaxBuckets = kShards * 4096;  // ~25 MB with short keys

  /// Holds at most about `max_buckets` buckets (rounded to a multiple of kShards).
  explicit InProcessRateLimiter(const Clock& clock, std::size_t max_buckets = kDefaultMaxBuckets)
      : clock_(clock), max_per_shard_(std::max<std::size_t>(1, max_buckets / kShards)) {}

  Task<RateDecision> Take(std::string_view key, const RateLimit& limit, double cost = 1) override;
  /// Take without the coroutine, for callers that are not coroutines. Same guarantees.
  RateDecision TakeNow(std::string_view key, const RateLimit& limit, double cost = 1);
  /// Buckets held now, over all shards; for tests and metrics.
  std::size_t BucketCount() const;

 private:
  static constexpr std::size_t kMinSweepSize = 64;

  struct Bucket {
    double tokens = 0;
    SystemTime updated;
    SystemTime full_at;  // when it is full again if left alone; droppable from then on
  };
  struct alignas(64) Shard {  // own cache line: shards never share a line's contention
    mutable std::mutex mutex;
    StringMap<Bucket> buckets;
    std::size_t sweep_at_size = kMinSweepSize;  // sweep when the map reaches this size
  };

  void MakeRoom(Shard& shard, SystemTime now) const;

  const Clock& clock_;
  const std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace chatd::cache
