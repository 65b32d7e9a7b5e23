#include "accounts/key_limits.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <simdjson.h>

#include "accounts/validation.hpp"
#include "core/json.hpp"

namespace chatd::accounts {

std::string_view BudgetUnitName(BudgetUnit unit) { return unit == BudgetUnit::kUsd ? "usd" : "tokens"; }

std::string_view BudgetPeriodName(BudgetPeriod period) { return period == BudgetPeriod::kDay ? "day" : "month"; }

std::optional<BudgetUnit> ParseBudgetUnit(std::string_view name) {
  if (name == "tokens") return BudgetUnit::kTokens;
  if (name == "usd") return BudgetUnit::kUsd;
  return std::nullopt;
}

std::optional<BudgetPeriod> ParseBudgetPeriod(std::string_view name) {
  if (name == "day") return BudgetPeriod::kDay;
  if (name == "month") return BudgetPeriod::kMonth;
  return std::nullopt;
}

Expected<void> NormalizeKeyLimits(KeyLimits& limits) {
  if (!limits.allowed_models.empty()) {
    if (limits.allowed_models.size() > kMaxAllowedModels) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("allowed_models may name at most {} models", kMaxAllowedModels), "allowed_models");
    }
    std::vector<std::string> unique;
    for (const std::string& model : limits.allowed_models) {
      if (auto valid = CheckName(model, "allowed_models", 1, kMaxModelNameLength); !valid) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("allowed_models: each model name must be 1 to {} characters without control "
                                     "characters",
                                     kMaxModelNameLength),
                         "allowed_models");
      }
      if (std::find(unique.begin(), unique.end(), model) == unique.end()) unique.push_back(model);
    }
    limits.allowed_models = std::move(unique);
  }
  if (limits.rpm && (*limits.rpm < 1 || *limits.rpm > kMaxRpm)) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("rpm_limit must be from 1 to {}", kMaxRpm), "rpm_limit");
  }
  if (limits.tpm && (*limits.tpm < 1 || *limits.tpm > kMaxTpm)) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("tpm_limit must be from 1 to {}", kMaxTpm), "tpm_limit");
  }
  if (limits.budget) {
    const Budget& budget = *limits.budget;
    const double amount = budget.amount;
    if (budget.unit == BudgetUnit::kTokens) {
      if (!(amount >= 1 && amount <= kMaxTokenBudget) || amount != std::floor(amount)) {
        return MakeError(ErrorCode::kInvalidArgument, "budget.amount in tokens must be a whole number from 1 to 10^12",
                         "budget.amount");
      }
    } else if (!(amount > 0 && amount <= kMaxUsdBudget)) {
      return MakeError(ErrorCode::kInvalidArgument, "budget.amount in USD must be above 0 and at most 1000000",
                       "budget.amount");
    }
  }
  return {};
}

KeyLimits ApplyChange(KeyLimits limits, const KeyLimitsChange& change) {
  if (change.allowed_models) limits.allowed_models = change.allowed_models->value_or(std::vector<std::string>{});
  if (change.rpm) limits.rpm = *change.rpm;
  if (change.tpm) limits.tpm = *change.tpm;
  if (change.budget) limits.budget = *change.budget;
  if (change.response_cache) limits.response_cache = *change.response_cache;
  return limits;
}

store::ApiKeyLimitsRecord ToRecord(const KeyLimits& limits) {
  store::ApiKeyLimitsRecord record;
  if (!limits.allowed_models.empty()) {
    JsonWriter json;
    json.BeginArray();
    for (const std::string& model : limits.allowed_models) json.String(model);
    json.EndArray();
    record.allowed_models = std::move(json).str();
  }
  record.rpm_limit = limits.rpm;
  record.tpm_limit = limits.tpm;
  if (limits.budget) {
    record.budget_amount = limits.budget->amount;
    record.budget_unit = std::string(BudgetUnitName(limits.budget->unit));
    record.budget_period = std::string(BudgetPeriodName(limits.budget->period));
  }
  record.response_cache = limits.response_cache;
  return record;
}

KeyLimits FromRecord(const store::ApiKeyLimitsRecord& record) {
  KeyLimits limits;
  if (!record.allowed_models.empty()) {
    thread_local simdjson::dom::parser parser;
    simdjson::dom::array array;
    if (parser.parse(record.allowed_models.data(), record.allowed_models.size()).get(array) == simdjson::SUCCESS) {
      for (const auto element : array) {
        std::string_view name;
        if (element.get(name) == simdjson::SUCCESS) limits.allowed_models.emplace_back(name);
      }
    }
  }
  limits.rpm = record.rpm_limit;
  limits.tpm = record.tpm_limit;
  const auto unit = ParseBudgetUnit(record.budget_unit);
  const auto period = ParseBudgetPeriod(record.budget_period);
  if (record.budget_amount && unit && period) limits.budget = Budget{*record.budget_amount, *unit, *period};
  limits.response_cache = record.response_cache;
  return limits;
}

}  // namespace chatd::accounts
