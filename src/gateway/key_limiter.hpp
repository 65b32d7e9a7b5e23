// KeyLimiter: the gateway's Admission for API keys — allowed models, requests and tokens
// per minute, and budgets of tokens or USD per day or month (docs/architecture.md
// "Key limits and budgets").
//
// Admit, in order: the key's limits (AccountService::ApiKeyLimits, cached); the model
// (403 unless allowed); one request from the key's RPM bucket and `estimated_tokens`
// from its TPM bucket (429 with retry_after); then a reservation against the budget
// (429 until the period ends). A later refusal gives back what the earlier steps took.
// Settle corrects with the real usage: the TPM bucket is credited or debited the
// difference (a debit may leave it in debt, which delays the next requests), and the
// reservation is replaced by what was spent, cancelled and failed requests included.
//
// Budgets are atomic counters per key and period: `used` holds the period's settled
// spend plus every reservation in flight, and a reservation is a compare-and-swap that
// refuses to take `used` past the budget. So however many requests race, the spend
// exceeds the budget only by what requests in flight use beyond their reservations
// (a request without max_tokens reserves the gateway's estimate). Tokens count prompt +
// completion; USD count nano-dollars, reserved at the model's higher price per token
// (llm::ModelInfo prices) and settled at the cost the gateway computed.
//
// The counters start from the usage store: the first request of a key in a period
// (after a start, or a period's rollover) reads the key's spend since the period began
// from usage_events — one query, the requests that arrive meanwhile wait for it — and
// later ones only add. They live in this process: with several
// instances each enforces the budget with its own count plus what was stored when it
// started counting — a shared budget needs the counters in Redis (a later issue), like
// the RPM/TPM buckets.
//
// Thread-safety: Admit and Settle run on any I/O thread, concurrently. Per-key state is
// in a sharded map; buckets take a per-key mutex for a few arithmetic operations;
// budgets are lock-free.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "accounts/key_limits.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "gateway/admission.hpp"
#include "llm/model_registry.hpp"
#include "store/usage_repository.hpp"

namespace chatd::gateway {

/// A key's limits by its id; AccountService::ApiKeyLimits in production. kNotFound when
/// the key is gone.
using KeyLimitsLookup = std::function<Task<Expected<std::shared_ptr<const accounts::KeyLimits>>>(std::string key_id)>;

/// The start and end of the budget period holding `now` (UTC calendar day or month).
struct BudgetWindowBounds {
  SystemTime start;
  SystemTime end;
};
BudgetWindowBounds BudgetPeriodAt(accounts::BudgetPeriod period, SystemTime now);

/// The reserve-then-settle counter of one key's budget in one period.
class BudgetCounter {
 public:
  BudgetCounter(std::int64_t limit, accounts::BudgetUnit unit, BudgetWindowBounds bounds)
      : limit_(limit), unit_(unit), bounds_(bounds) {}

  /// Reserves `amount` if used + amount stays within the limit (and the limit is not
  /// reached yet); false otherwise.
  bool TryReserve(std::int64_t amount);
  /// Replaces a reservation of `reserved` by the real `spent` (either may be 0).
  void Settle(std::int64_t reserved, std::int64_t spent);
  /// Adds what was spent before this counter existed, once; later calls do nothing.
  /// False when another caller already did.
  bool Start(std::int64_t spent_before);
  /// Claims the one read of the stored spend (true for one caller at a time), so a burst
  /// of first requests makes one query; AbandonStart() lets another caller try after a
  /// failed read.
  bool TryBeginStart() {
    bool expected = false;
    return starting_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
  }
  void AbandonStart() { starting_.store(false, std::memory_order_release); }
  bool started() const { return started_.load(std::memory_order_acquire); }

  std::int64_t used() const { return used_.load(std::memory_order_relaxed); }
  std::int64_t limit() const { return limit_; }
  void set_limit(std::int64_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  accounts::BudgetUnit unit() const { return unit_; }
  const BudgetWindowBounds& bounds() const { return bounds_; }

 private:
  std::atomic<std::int64_t> limit_;
  const accounts::BudgetUnit unit_;
  const BudgetWindowBounds bounds_;
  std::atomic<std::int64_t> used_{0};  // settled spend + reservations in flight
  std::atomic<bool> started_{false};
  std::atomic<bool> starting_{false};
};

/// Budget units: tokens, or USD in nano-dollars (integers, so counters stay atomic).
inline constexpr double kNanosPerUsd = 1e9;

class KeyLimiter final : public Admission {
 public:
  KeyLimiter(KeyLimitsLookup lookup, store::UsageRepository& usage, const llm::ModelRegistry& models,
             const Clock& clock, metrics::Registry& metrics);
  ~KeyLimiter() override;
  KeyLimiter(const KeyLimiter&) = delete;
  KeyLimiter& operator=(const KeyLimiter&) = delete;

  /// Sessions (no key) and keys without limits are admitted without state. Errors:
  /// kPermissionDenied (model not allowed), kRateLimited with retry_after (RPM, TPM,
  /// budget), kUnauthenticated (the key was revoked meanwhile), kUnavailable (the usage
  /// store could not be read to start a budget).
  Task<Expected<Ticket>> Admit(const Caller& caller, const std::string& model, std::int64_t estimated_tokens) override;
  void Settle(const Ticket& ticket, const TokenUsage& actual, double cost, UsageStatus status) override;

  /// Tickets admitted and not yet settled; for tests and metrics.
  std::size_t InFlight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chatd::gateway
