// LruCache<V>: a thread-safe in-process cache bounded by bytes, with a lifetime per entry
// and least-recently-used eviction — for values that are large and vary in size (the
// gateway's cached answers), where TtlCache's count bound would say nothing about memory.
//
// Entries live in `shards` shards chosen by the key's hash, each a mutex, a hash map and a
// recency list, so requests contend only when their keys share a shard. Each shard holds
// at most max_bytes / shards: an entry costs its key's bytes plus its value's (`Weigh`),
// and a Put that takes a shard over its share evicts that shard's least recently used
// entries until it fits (a value bigger than a whole share is not stored). Per-shard
// budgets keep eviction local — no global lock, no cross-shard scan — at the price of
// evicting a little early when keys spread unevenly; with hashed keys and 16 shards the
// spread is small. The bookkeeping (~100 bytes an entry: list and hash nodes) is not
// counted: the cache is meant for values of kilobytes.
//
// Expiry is lazy: a Get that meets an expired entry drops it and misses; expired entries
// nobody asks for leave through LRU eviction like any other. Time comes from the Clock,
// so tests move it.
//
// Values are returned by copy: use a shared_ptr<const T> (or a small struct) for big ones.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache/string_hash.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"

namespace chatd::cache {

/// The bytes of the common value types; pass your own Weigh for a struct.
struct ValueBytes {
  std::size_t operator()(const std::string& value) const noexcept { return value.size(); }
  std::size_t operator()(const std::shared_ptr<const std::string>& value) const noexcept {
    return value ? value->size() : 0;
  }
};

/// Optional metrics the cache keeps current as it changes (null: none).
struct LruCacheMetrics {
  metrics::Gauge* bytes = nullptr;        // what the entries cost now
  metrics::Counter* evictions = nullptr;  // entries evicted to make room (not expiries)
};

template <typename V, typename Weigh = ValueBytes>
class LruCache {
 public:
  static constexpr std::size_t kDefaultShards = 16;

  /// Holds at most `max_bytes` of keys and values over `shards` shards (at least 1).
  LruCache(const Clock& clock, std::size_t max_bytes, std::size_t shards = kDefaultShards, LruCacheMetrics metrics = {})
      : clock_(clock),
        shards_(std::max<std::size_t>(1, shards)),
        shard_budget_(max_bytes / shards_.size()),
        metrics_(metrics) {}

  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  /// The value if present and not expired; it becomes the most recently used.
  std::optional<V> Get(std::string_view key) {
    const SystemTime now = clock_.Now();
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mutex);
    const auto found = shard.index.find(key);
    if (found == shard.index.end()) return std::nullopt;
    const auto entry = found->second;
    if (entry->expires <= now) {
      expirations_.fetch_add(1, std::memory_order_relaxed);
      Remove(shard, entry);
      return std::nullopt;
    }
    shard.order.splice(shard.order.begin(), shard.order, entry);
    return entry->value;
  }

  /// Inserts or replaces `key` as the most recently used entry, expiring after `ttl`, and
  /// evicts the shard's least recently used entries past its budget. False (and any old
  /// value removed) when `ttl` <= 0 or the entry alone is bigger than a shard's budget.
  bool Put(std::string key, V value, std::chrono::milliseconds ttl) {
    const SystemTime now = clock_.Now();
    const std::size_t cost = key.size() + Weigh{}(value);
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mutex);
    if (const auto found = shard.index.find(std::string_view(key)); found != shard.index.end()) {
      Remove(shard, found->second);
    }
    if (ttl <= std::chrono::milliseconds::zero() || cost > shard_budget_) return false;
    while (!shard.order.empty() && shard.bytes + cost > shard_budget_) {
      Remove(shard, std::prev(shard.order.end()));
      evictions_.fetch_add(1, std::memory_order_relaxed);
      if (metrics_.evictions != nullptr) metrics_.evictions->Inc();
    }
    shard.order.push_front(Entry{std::move(key), std::move(value), now + ttl, cost});
    const auto entry = shard.order.begin();
    shard.index.emplace(std::string_view(entry->key), entry);  // the view points into the list node
    Account(shard, static_cast<std::int64_t>(cost));
    return true;
  }

  void Erase(std::string_view key) {
    Shard& shard = ShardFor(key);
    std::lock_guard lock(shard.mutex);
    if (const auto found = shard.index.find(key); found != shard.index.end()) Remove(shard, found->second);
  }

  void Clear() {
    for (Shard& shard : shards_) {
      std::lock_guard lock(shard.mutex);
      Account(shard, -static_cast<std::int64_t>(shard.bytes));
      shard.index.clear();
      shard.order.clear();
    }
  }

  /// Entries held, expired or not (locks each shard in turn); for tests and reports.
  std::size_t Size() const {
    std::size_t size = 0;
    for (const Shard& shard : shards_) {
      std::lock_guard lock(shard.mutex);
      size += shard.index.size();
    }
    return size;
  }
  /// What the entries cost now: key and value bytes.
  std::size_t Bytes() const { return static_cast<std::size_t>(bytes_.load(std::memory_order_relaxed)); }
  /// Entries evicted to make room since the start.
  std::uint64_t Evictions() const { return evictions_.load(std::memory_order_relaxed); }
  /// Entries dropped because a Get found them expired.
  std::uint64_t Expirations() const { return expirations_.load(std::memory_order_relaxed); }
  /// The most one shard holds (max_bytes / shards): the largest entry that can be stored.
  std::size_t ShardBudget() const { return shard_budget_; }

 private:
  struct Entry {
    std::string key;
    V value;
    SystemTime expires;
    std::size_t cost = 0;
  };
  using Order = std::list<Entry>;  // most recently used first
  struct alignas(64) Shard {       // own cache line: shards never share a line's contention
    mutable std::mutex mutex;
    Order order;
    std::unordered_map<std::string_view, typename Order::iterator, StringHash, std::equal_to<>> index;
    std::size_t bytes = 0;
  };

  Shard& ShardFor(std::string_view key) { return shards_[StringHash{}(key) % shards_.size()]; }

  // Called with the shard locked.
  void Remove(Shard& shard, typename Order::iterator entry) {
    Account(shard, -static_cast<std::int64_t>(entry->cost));
    shard.index.erase(std::string_view(entry->key));
    shard.order.erase(entry);
  }

  void Account(Shard& shard, std::int64_t delta) {
    shard.bytes = static_cast<std::size_t>(static_cast<std::int64_t>(shard.bytes) + delta);
    bytes_.fetch_add(delta, std::memory_order_relaxed);
    if (metrics_.bytes != nullptr) metrics_.bytes->Add(static_cast<double>(delta));
  }

  const Clock& clock_;
  std::vector<Shard> shards_;
  const std::size_t shard_budget_;
  const LruCacheMetrics metrics_;
  std::atomic<std::int64_t> bytes_{0};
  std::atomic<std::uint64_t> evictions_{0};
  std::atomic<std::uint64_t> expirations_{0};
};

}  // namespace chatd::cache
