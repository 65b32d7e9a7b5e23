#include "cache/in_process_rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace chatd::cache {

namespace {

// Refill arithmetic is floating point: 0.1 s at 10/s may give 0.9999999999 tokens. A
// billionth of a token of slack keeps such exact cases exact.
constexpr double kEpsilon = 1e-9;
// Waits are capped (a tiny rate would otherwise overflow the conversions): ~31 years.
constexpr double kMaxSeconds = 1e9;

std::chrono::milliseconds CeilMilliseconds(double seconds) {
  const double ms = std::ceil(std::min(seconds, kMaxSeconds) * 1000.0 - 1e-6);
  return std::chrono::milliseconds(ms > 0 ? static_cast<std::int64_t>(ms) : 0);
}

}  // namespace

Task<RateDecision> InProcessRateLimiter::Take(std::string_view key, const RateLimit& limit, double cost) {
  co_return TakeNow(key, limit, cost);
}

RateDecision InProcessRateLimiter::TakeNow(std::string_view key, const RateLimit& limit, double cost) {
  const double rate = limit.rate_per_second;
  const double burst = limit.burst;
  if (!(rate > 0) || !(burst > 0) || !(cost >= 0)) {
    throw std::invalid_argument("rate limit needs a positive rate and burst and a cost >= 0");
  }
  const SystemTime now = clock_.Now();
  Shard& shard = shards_[StringHash{}(key) % kShards];

  std::lock_guard lock(shard.mutex);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= shard.sweep_at_size || shard.buckets.size() >= max_per_shard_) {
      MakeRoom(shard, now);
    }
    it = shard.buckets.emplace(std::string(key), Bucket{burst, now, now}).first;
  }
  Bucket& bucket = it->second;
  // The system clock may step back; then refill pauses until it passes `updated` again
  // rather than granting the step twice.
  if (now > bucket.updated) {
    const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
    bucket.tokens = std::min(burst, bucket.tokens + elapsed * rate);
    bucket.updated = now;
  }
  bucket.tokens = std::min(bucket.tokens, burst);  // the limit may have shrunk since

  RateDecision decision;
  decision.limit = burst;
  if (cost <= burst && bucket.tokens + kEpsilon >= cost) {
    bucket.tokens = std::max(0.0, bucket.tokens - cost);
  } else {
    decision.allowed = false;
    // A cost above the burst can never be met; the best hint is "when full".
    decision.retry_after = CeilMilliseconds((std::min(cost, burst) - bucket.tokens) / rate);
  }
  decision.remaining = std::floor(bucket.tokens + kEpsilon);
  const double seconds_to_full = std::min((burst - bucket.tokens) / rate, kMaxSeconds);
  decision.reset_after = CeilMilliseconds(seconds_to_full);
  bucket.full_at =
      bucket.updated + std::chrono::duration_cast<SystemTime::duration>(std::chrono::duration<double>(seconds_to_full));
  return decision;
}

void InProcessRateLimiter::MakeRoom(Shard& shard, SystemTime now) const {
  std::erase_if(shard.buckets, [now](const auto& entry) { return entry.second.full_at <= now; });
  if (shard.buckets.size() >= max_per_shard_) {
    // Drop the eighth that will be full soonest; ties (buckets made at the same instant)
    // are cut at exactly that count.
    std::vector<SystemTime> full_at;
    full_at.reserve(shard.buckets.size());
    for (const auto& [key, bucket] : shard.buckets) full_at.push_back(bucket.full_at);
    std::size_t to_drop = std::max<std::size_t>(1, full_at.size() / 8);
    const auto cutoff = full_at.begin() + static_cast<std::ptrdiff_t>(to_drop - 1);
    std::nth_element(full_at.begin(), cutoff, full_at.end());
    const SystemTime threshold = *cutoff;
    to_drop -=
        std::erase_if(shard.buckets, [threshold](const auto& entry) { return entry.second.full_at < threshold; });
    for (auto it = shard.buckets.begin(); it != shard.buckets.end() && to_drop > 0;) {
      if (it->second.full_at == threshold) {
        it = shard.buckets.erase(it);
        --to_drop;
      } else {
        ++it;
      }
    }
  }
  // The next sweep when the shard has doubled: sweeping stays amortised O(1) per insert.
  shard.sweep_at_size = std::max(2 * shard.buckets.size(), shard.buckets.size() + kMinSweepSize);
}

std::size_t InProcessRateLimiter::BucketCount() const {
  std::size_t count = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    count += shard.buckets.size();
  }
  return count;
}

std::unique_ptr<RateLimiter> MakeInProcessRateLimiter(const Clock& clock) {
  return std::make_unique<InProcessRateLimiter>(clock);
}

}  // namespace chatd::cache
