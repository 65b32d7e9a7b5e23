// The gateway's optional exact-match response cache for POST /v1/chat/completions
// (GATEWAY_CACHE, off by default): a deterministic request asked again gets the answer the
// upstream gave the first time, without calling it.
//
// Only requests whose answer the upstream should repeat are eligible: not streamed,
// `temperature` explicitly 0, `n` absent or 1. The key is the SHA-256 of the caller's
// scope (the API key id, or the user id for an access token — keys never see each other's
// answers, even a user's own other keys), the resolved public model and the request body
// exactly as it came; a byte of difference (whitespace, field order, `user`) is another
// entry. Only an upstream's complete 200 answer (a finish_reason seen) of at most
// `max_entry_bytes` is stored, for `ttl`. A key whose `response_cache` attribute is false
// bypasses the cache both ways.
//
// The answers live in a cache::LruCache bounded by `max_bytes`. They are per process:
// each instance fills its own (a shared cache goes to Redis with the cross-instance work).
//
// Find and Store run on the request's I/O thread; the cache itself is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cache/lru_cache.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "core/metrics.hpp"
#include "gateway/admission.hpp"
#include "gateway/completion_request.hpp"

namespace chatd::gateway {

struct ResponseCacheConfig {
  bool enabled = false;                                  // GATEWAY_CACHE
  std::chrono::milliseconds ttl{std::chrono::hours(1)};  // GATEWAY_CACHE_TTL
  std::size_t max_bytes = 64 * 1024 * 1024;              // GATEWAY_CACHE_MAX_BYTES
  std::size_t max_entry_bytes = 1024 * 1024;             // larger answers are passed on, not kept
};

/// What the cache did for a request: the `x-chatd-cache` response header.
enum class CacheStatus {
  kBypass,  // not eligible, the cache is off, or the key opted out
  kMiss,    // eligible, not cached: the upstream answers (and the answer may be stored)
  kHit,     // answered from the cache
};
std::string_view CacheStatusName(CacheStatus status);  // "bypass" | "miss" | "hit"
inline constexpr std::string_view kCacheHeader = "x-chatd-cache";

/// Whether an API key lets its answers be cached (the key's `response_cache` attribute);
/// AccountService::ApiKeyLimits in production. An error bypasses the cache.
using CacheAllowedLookup = std::function<Task<Expected<bool>>(std::string key_id)>;

/// The request asks for one deterministic, whole answer: not streamed, temperature 0
/// given explicitly, n absent or 1.
bool CacheEligible(const PreparedCompletion& prepared);

/// The cache key (32 raw bytes): SHA-256 over the caller's scope, the resolved model and
/// the exact body, each length-prefixed so no two different triples hash the same input.
std::string ResponseCacheKey(const Caller& caller, std::string_view model, std::string_view body);

/// One request's verdict from Find, handed back to Store.
struct CacheLookup {
  CacheStatus status = CacheStatus::kBypass;
  std::string key;                          // on a hit or a miss
  std::shared_ptr<const std::string> body;  // on a hit: the stored answer
};

class ResponseCache {
 public:
  /// `allowed` is only asked for requests made with an API key. Everything referenced
  /// must outlive the cache.
  ResponseCache(ResponseCacheConfig config, CacheAllowedLookup allowed, const Clock& clock, metrics::Registry& metrics);

  /// Looks the request up (`model`: the resolved public model; `body`: the client's
  /// bytes). Counts a hit or a miss; a bypass counts neither.
  Task<CacheLookup> Find(const Caller& caller, const std::string& model, const PreparedCompletion& prepared,
                         std::string_view body);

  /// Keeps a miss's complete answer (an upstream's 200 body) unless it is too big.
  void Store(const CacheLookup& lookup, std::string_view answer);

  bool enabled() const { return config_.enabled; }
  /// What the stored answers and their keys take now.
  std::size_t Bytes() const { return entries_.Bytes(); }

 private:
  const ResponseCacheConfig config_;
  CacheAllowedLookup allowed_;
  metrics::Counter& hits_;
  metrics::Counter& misses_;
  cache::LruCache<std::shared_ptr<const std::string>> entries_;
};

}  // namespace chatd::gateway
