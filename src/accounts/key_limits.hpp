// The limits an API key carries (docs/api.md "API keys"): the models it may call, requests
// and tokens per minute, and a budget of tokens or USD per UTC day or month — plus whether
// the gateway's response cache may serve it. Accounts validates and stores them with the
// key; the gateway enforces them (gateway/key_limiter.hpp, gateway/response_cache.hpp),
// looking them up through AccountService::ApiKeyLimits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "store/accounts_repository.hpp"

namespace chatd::accounts {

enum class BudgetUnit { kTokens, kUsd };
enum class BudgetPeriod { kDay, kMonth };  // UTC calendar days and months

std::string_view BudgetUnitName(BudgetUnit unit);        // "tokens" | "usd"
std::string_view BudgetPeriodName(BudgetPeriod period);  // "day" | "month"
std::optional<BudgetUnit> ParseBudgetUnit(std::string_view name);
std::optional<BudgetPeriod> ParseBudgetPeriod(std::string_view name);

struct Budget {
  double amount = 0;  // tokens (a whole number) or USD
  BudgetUnit unit = BudgetUnit::kTokens;
  BudgetPeriod period = BudgetPeriod::kMonth;
};

struct KeyLimits {
  std::vector<std::string> allowed_models;  // public names or aliases; empty: every model
  std::optional<std::int64_t> rpm;          // requests per minute
  std::optional<std::int64_t> tpm;          // tokens (prompt + completion) per minute
  std::optional<Budget> budget;
  /// The gateway may answer from (and keep answers in) its response cache; not a limit,
  /// but the key's gateway policy, looked up with the limits.
  bool response_cache = true;

  /// No limit to enforce (response_cache is not one).
  bool Unlimited() const { return allowed_models.empty() && !rpm && !tpm && !budget; }
};

/// A PATCH of a key's limits: an absent field stays as it is; a field holding nullopt
/// (JSON null) removes that limit.
struct KeyLimitsChange {
  std::optional<std::optional<std::vector<std::string>>> allowed_models;
  std::optional<std::optional<std::int64_t>> rpm;
  std::optional<std::optional<std::int64_t>> tpm;
  std::optional<std::optional<Budget>> budget;
  std::optional<bool> response_cache;
};

inline constexpr std::size_t kMaxAllowedModels = 100;
inline constexpr std::size_t kMaxModelNameLength = 100;
inline constexpr std::int64_t kMaxRpm = 1'000'000;
inline constexpr std::int64_t kMaxTpm = 1'000'000'000;
inline constexpr double kMaxTokenBudget = 1e12;
inline constexpr double kMaxUsdBudget = 1e6;

/// kInvalidArgument naming the field ("allowed_models", "rpm_limit", "tpm_limit",
/// "budget.amount") unless every limit is in range: 1–100 model names of 1–100
/// characters without control characters, rpm 1–1 000 000, tpm 1–10⁹, a budget amount
/// above 0 and at most 10¹² tokens (a whole number) or 1 000 000 USD. Removes repeated
/// model names (the first stays).
Expected<void> NormalizeKeyLimits(KeyLimits& limits);

/// `limits` with `change` applied (not yet validated).
KeyLimits ApplyChange(KeyLimits limits, const KeyLimitsChange& change);

store::ApiKeyLimitsRecord ToRecord(const KeyLimits& limits);
/// What the store holds, read leniently: a malformed column is ignored (no such limit).
KeyLimits FromRecord(const store::ApiKeyLimitsRecord& record);

}  // namespace chatd::accounts
