// TtlCache<V>: a small thread-safe in-process cache with a lifetime per entry, e.g. API
// key hash → Principal, so most authenticated requests touch no database.
//
// 16 shards, each a mutex and a hash map keyed by std::string (looked up by string_view).
// Expired entries are never returned and are dropped when met (Get) or when their shard
// is full (Put). Memory is bounded by `max_entries`: a full shard first drops what has
// expired, then the eighth of its entries that expire soonest, so a Put stays amortised
// O(1) even under a flood of distinct keys. Values are returned by copy; keep V small.
//
// A Put racing an Erase (a lookup that started before a revocation finishes after it)
// can put back what the Erase removed; the entry's ttl bounds how long it is served, so
// keep ttls short where staleness matters.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache/string_hash.hpp"
#include "core/clock.hpp"

namespace chatd::cache {

template <typename V>
class TtlCache {
 public:
  static constexpr std::size_t kShards = 16;

  /// Entries live `ttl` unless Put says otherwise; at most about `max_entries` are kept
  /// (rounded up to a multiple of the shard count).
  TtlCache(const Clock& clock, std::chrono::milliseconds ttl, std::size_t max_entries)
      : clock_(clock), ttl_(ttl), max_per_shard_(std::max<std::size_t>(1, (max_entries + kShards - 1) / kShards)) {}

  TtlCache(const TtlCache&) = delete;
  TtlCache& operator=(const TtlCache&) = delete;

  /// The value if present and not expired.
  std::optional<V> Get(std::string_view key) {
    const SystemTime now = clock_.Now();
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mutex);
    const auto it = shard.entries.find(key);
    if (it == shard.entries.end()) return std::nullopt;
    if (it->second.expires <= now) {
      shard.entries.erase(it);
      return std::nullopt;
    }
    return it->second.value;
  }

  /// Inserts or replaces `key`, expiring after the cache's ttl.
  void Put(std::string key, V value) { Put(std::move(key), std::move(value), ttl_); }

  /// Inserts or replaces `key`, expiring after `ttl` (<= 0: not stored, and any old value
  /// is removed).
  void Put(std::string key, V value, std::chrono::milliseconds ttl) {
    const SystemTime now = clock_.Now();
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mutex);
    if (ttl <= std::chrono::milliseconds::zero()) {
      shard.entries.erase(key);
      return;
    }
    const SystemTime expires = now + ttl;
    if (const auto it = shard.entries.find(key); it != shard.entries.end()) {
      it->second = Entry{std::move(value), expires};
      return;
    }
    if (shard.entries.size() >= max_per_shard_) MakeRoom(shard, now);
    shard.entries.emplace(std::move(key), Entry{std::move(value), expires});
  }

  void Erase(std::string_view key) {
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mutex);
    if (const auto it = shard.entries.find(key); it != shard.entries.end()) shard.entries.erase(it);
  }

  /// Removes every entry for which `pred(std::string_view key, const V& value)` is true,
  /// e.g. all cached principals of a user whose keys were revoked. Locks one shard at a
  /// time, so it is not atomic over the whole cache.
  template <typename Pred>
  void EraseIf(Pred pred) {
    for (Shard& shard : shards_) {
      std::lock_guard lock(shard.mutex);
      std::erase_if(shard.entries,
                    [&](const auto& entry) { return pred(std::string_view(entry.first), entry.second.value); });
    }
  }

  void Clear() {
    EraseIf([](std::string_view, const V&) { return true; });
  }

  /// Entries held, expired or not; for tests and metrics.
  std::size_t Size() const {
    std::size_t size = 0;
    for (const Shard& shard : shards_) {
      std::lock_guard lock(shard.mutex);
      size += shard.entries.size();
    }
    return size;
  }

 private:
  struct Entry {
    V value;
    SystemTime expires;
  };
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    StringMap<Entry> entries;
  };

  Shard& ShardFor(std::string_view key) { return shards_[StringHash{}(key) % kShards]; }

  // Called with the shard locked and full: drop what has expired, and if that is not
  // enough, the eighth (at least one) of the entries that expire soonest. Ties (entries
  // put at the same instant) are cut at exactly that count.
  void MakeRoom(Shard& shard, SystemTime now) const {
    std::erase_if(shard.entries, [now](const auto& entry) { return entry.second.expires <= now; });
    if (shard.entries.size() < max_per_shard_) return;
    std::vector<SystemTime> expiries;
    expiries.reserve(shard.entries.size());
    for (const auto& entry : shard.entries) expiries.push_back(entry.second.expires);
    std::size_t to_drop = std::max<std::size_t>(1, expiries.size() / 8);
    const auto cutoff = expiries.begin() + static_cast<std::ptrdiff_t>(to_drop - 1);
    std::nth_element(expiries.begin(), cutoff, expiries.end());
    const SystemTime threshold = *cutoff;
    to_drop -=
        std::erase_if(shard.entries, [threshold](const auto& entry) { return entry.second.expires < threshold; });
    for (auto it = shard.entries.begin(); it != shard.entries.end() && to_drop > 0;) {
      if (it->second.expires == threshold) {
        it = shard.entries.erase(it);
        --to_drop;
      } else {
        ++it;
      }
    }
  }

  const Clock& clock_;
  const std::chrono::milliseconds ttl_;
  const std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace chatd::cache
