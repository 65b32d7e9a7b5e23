#include "gateway/response_cache.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "core/sha256.hpp"

namespace chatd::gateway {
namespace {

// Bumped when what a key covers changes, so old and new keys never meet.
constexpr std::string_view kKeyVersion = "chatd-response-cache-v1";

// Fewer shards for a small cache, so every shard's share of the bytes still holds a few of
// the largest answers kept (a shard's share is the largest entry it can store).
std::size_t ShardsFor(const ResponseCacheConfig& config) {
  using Cache = cache::LruCache<std::shared_ptr<const std::string>>;
  const std::size_t per_shard = 4 * std::max<std::size_t>(1, config.max_entry_bytes);
  return std::clamp<std::size_t>(config.max_bytes / per_shard, 1, Cache::kDefaultShards);
}

void UpdateLengthPrefixed(Sha256& hash, std::string_view part) {
  std::array<char, 8> length{};
  std::uint64_t size = part.size();
  for (char& byte : length) {
    byte = static_cast<char>(size & 0xFF);
    size >>= 8;
  }
  hash.Update(std::string_view(length.data(), length.size()));
  hash.Update(part);
}

}  // namespace

std::string_view CacheStatusName(CacheStatus status) {
  switch (status) {
    case CacheStatus::kBypass:
      return "bypass";
    case CacheStatus::kMiss:
      return "miss";
    case CacheStatus::kHit:
      return "hit";
  }
  return "bypass";
}

bool CacheEligible(const PreparedCompletion& prepared) {
  return !prepared.stream && prepared.temperature && *prepared.temperature == 0 && prepared.n == 1;
}

std::string ResponseCacheKey(const Caller& caller, std::string_view model, std::string_view body) {
  Sha256 hash;
  hash.Update(kKeyVersion);
  // A session's answers are its user's; a key's are the key's alone. The prefixes keep a
  // key id and a user id that happened to be equal apart.
  if (caller.api_key_id.empty()) {
    UpdateLengthPrefixed(hash, "user");
    UpdateLengthPrefixed(hash, caller.user_id);
  } else {
    UpdateLengthPrefixed(hash, "key");
    UpdateLengthPrefixed(hash, caller.api_key_id);
  }
  UpdateLengthPrefixed(hash, model);
  UpdateLengthPrefixed(hash, body);
  const Sha256::Digest digest = hash.Finish();
  return std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
}

ResponseCache::ResponseCache(ResponseCacheConfig config, CacheAllowedLookup allowed, const Clock& clock,
                             metrics::Registry& metrics)
    : config_(config),
      allowed_(std::move(allowed)),
      hits_(metrics.AddCounter("gateway_cache_hits_total", "Gateway completions answered from the response cache.")
                .WithLabels({})),
      misses_(metrics
                  .AddCounter("gateway_cache_misses_total",
                              "Gateway completions eligible for the response cache that it did not hold.")
                  .WithLabels({})),
      entries_(clock, config.max_bytes, ShardsFor(config),
               cache::LruCacheMetrics{
                   .bytes = &metrics.AddGauge("gateway_cache_bytes", "Bytes of answers and keys in the response cache.")
                                 .WithLabels({}),
                   .evictions = &metrics
                                     .AddCounter("gateway_cache_evictions_total",
                                                 "Answers evicted from the response cache to make room.")
                                     .WithLabels({})}) {}

Task<CacheLookup> ResponseCache::Find(const Caller& caller, const std::string& model,
                                      const PreparedCompletion& prepared, std::string_view body) {
  CacheLookup lookup;
  if (!config_.enabled || !CacheEligible(prepared)) co_return lookup;
  if (!caller.api_key_id.empty()) {
    Task<Expected<bool>> asking = allowed_(caller.api_key_id);
    const Expected<bool> allowed = co_await std::move(asking);
    // A key that cannot be looked up is left to admission, which says why.
    if (!allowed || !*allowed) co_return lookup;
  }
  lookup.key = ResponseCacheKey(caller, model, body);
  if (auto stored = entries_.Get(lookup.key)) {
    lookup.status = CacheStatus::kHit;
    lookup.body = std::move(*stored);
    hits_.Inc();
  } else {
    lookup.status = CacheStatus::kMiss;
    misses_.Inc();
  }
  co_return lookup;
}

void ResponseCache::Store(const CacheLookup& lookup, std::string_view answer) {
  if (lookup.status != CacheStatus::kMiss || answer.size() > config_.max_entry_bytes) return;
  entries_.Put(lookup.key, std::make_shared<const std::string>(answer), config_.ttl);
}

}  // namespace chatd::gateway
