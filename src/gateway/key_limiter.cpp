#include "gateway/key_limiter.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "cache/string_hash.hpp"
#include "core/log.hpp"
#include "core/time.hpp"

namespace chatd::gateway {

using accounts::BudgetPeriod;
using accounts::BudgetUnit;
using accounts::KeyLimits;

BudgetWindowBounds BudgetPeriodAt(BudgetPeriod period, SystemTime now) {
  using namespace std::chrono;
  const sys_days today = floor<days>(now);
  if (period == BudgetPeriod::kDay) return {today, today + days{1}};
  const year_month_day date{today};
  const year_month month = date.year() / date.month();
  const year_month next = month + months{1};
  return {sys_days{month / 1}, sys_days{next / 1}};
}

bool BudgetCounter::TryReserve(std::int64_t amount) {
  const std::int64_t limit = limit_.load(std::memory_order_relaxed);
  std::int64_t current = used_.load(std::memory_order_relaxed);
  do {
    // A budget already used up refuses even requests that reserve nothing.
    if (current >= limit || amount > limit - current) return false;
  } while (!used_.compare_exchange_weak(current, current + amount, std::memory_order_relaxed));
  return true;
}

void BudgetCounter::Settle(std::int64_t reserved, std::int64_t spent) {
  used_.fetch_add(spent - reserved, std::memory_order_relaxed);
}

bool BudgetCounter::Start(std::int64_t spent_before) {
  bool expected = false;
  if (!started_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return false;
  used_.fetch_add(spent_before, std::memory_order_relaxed);
  return true;
}

namespace {

constexpr std::size_t kShards = 16;
// Requests waiting for a budget's first read poll this often, at most this long.
constexpr std::chrono::milliseconds kStartPoll{2};
constexpr std::chrono::seconds kStartTimeout{10};
constexpr double kSecondsPerMinute = 60;

// A token bucket of `capacity` refilled at capacity per minute; tokens may go below 0
// when a settlement debits more than was taken (the debt is paid by waiting).
struct Bucket {
  double tokens = 0;
  SystemTime updated{};
  bool fresh = true;

  void Refill(double capacity, SystemTime now) {
    if (fresh) {
      tokens = capacity;
      updated = now;
      fresh = false;
      return;
    }
    if (now > updated) {
      tokens += std::chrono::duration<double>(now - updated).count() * capacity / kSecondsPerMinute;
      updated = now;
    }
    tokens = std::min(tokens, capacity);
  }
  // The wait until `cost` tokens are there (cost at most the capacity).
  std::chrono::milliseconds Wait(double cost, double capacity) const {
    const double seconds = (std::min(cost, capacity) - tokens) * kSecondsPerMinute / capacity;
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(std::max(seconds, 0.001) * 1000)));
  }
};

std::int64_t ToUnits(BudgetUnit unit, double amount) {
  if (unit == BudgetUnit::kTokens) return static_cast<std::int64_t>(amount);
  return static_cast<std::int64_t>(std::llround(amount * kNanosPerUsd));
}

std::string FormatUnits(BudgetUnit unit, std::int64_t units) {
  if (unit == BudgetUnit::kTokens) return fmt::format("{} tokens", units);
  return fmt::format("{:.4f} USD", static_cast<double>(units) / kNanosPerUsd);
}

Unexpected RateLimited(std::string message, std::chrono::milliseconds retry_after) {
  Error error{ErrorCode::kRateLimited, std::move(message), {}, retry_after};
  return Unexpected{std::move(error)};
}

}  // namespace

struct KeyLimiter::Impl {
  // Everything counted for one key. Buckets and the budget counter pointer are guarded by
  // `mutex`; the counter itself is atomic.
  struct KeyState {
    std::mutex mutex;
    Bucket rpm;
    Bucket tpm;
    std::shared_ptr<BudgetCounter> budget;  // the current period's; null: none yet
  };

  // What Settle must undo or correct.
  struct Reservation {
    std::shared_ptr<KeyState> state;
    double tpm_taken = 0;                   // tokens taken from the TPM bucket
    double tpm_capacity = 0;                // 0: the key has no TPM limit
    std::shared_ptr<BudgetCounter> budget;  // null: no budget
    std::int64_t budget_reserved = 0;
  };

  struct alignas(64) StateShard {
    std::mutex mutex;
    cache::StringMap<std::shared_ptr<KeyState>> states;
  };
  struct alignas(64) TicketShard {
    std::mutex mutex;
    std::unordered_map<std::uint64_t, Reservation> reservations;
  };

  Impl(KeyLimitsLookup lookup_in, store::UsageRepository& usage_in, const llm::ModelRegistry& models_in,
       const Clock& clock_in, metrics::Registry& metrics)
      : lookup(std::move(lookup_in)),
        usage(usage_in),
        models(models_in),
        clock(clock_in),
        refusals(metrics.AddCounter("gateway_key_limit_refusals_total",
                                    "Gateway requests refused by their API key's limits.", {"reason"})),
        refused_model(refusals.WithLabels({"model"})),
        refused_rpm(refusals.WithLabels({"rpm"})),
        refused_tpm(refusals.WithLabels({"tpm"})),
        refused_budget(refusals.WithLabels({"budget"})) {}

  std::shared_ptr<KeyState> State(const std::string& key_id) {
    StateShard& shard = state_shards[cache::StringHash{}(key_id) % kShards];
    std::lock_guard lock(shard.mutex);
    auto& state = shard.states[key_id];
    if (!state) state = std::make_shared<KeyState>();
    return state;
  }

  bool ModelAllowed(const KeyLimits& limits, const std::string& model) const {
    if (limits.allowed_models.empty()) return true;
    for (const std::string& allowed : limits.allowed_models) {
      if (allowed == model) return true;
      // An alias in the list allows the model it names.
      auto resolved = models.Resolve(allowed);
      if (resolved && resolved->info.id == model) return true;
    }
    return false;
  }

  // What a request of `tokens` may cost at most, in budget units.
  std::int64_t Estimate(const accounts::Budget& budget, const std::string& model, std::int64_t tokens) const {
    if (budget.unit == BudgetUnit::kTokens) return tokens;
    auto resolved = models.Resolve(model);
    if (!resolved) return 0;
    const double price = std::max(resolved->info.input_price_per_million, resolved->info.output_price_per_million);
    // USD per token is price / 1e6: nano-dollars per token is price * 1000.
    return static_cast<std::int64_t>(std::ceil(static_cast<double>(tokens) * price * (kNanosPerUsd / 1e6)));
  }

  // The counter of the budget's current period, made (not yet started) when the period
  // or the kind of budget changed.
  std::shared_ptr<BudgetCounter> Counter(KeyState& state, const accounts::Budget& budget, SystemTime now) {
    const std::int64_t limit = ToUnits(budget.unit, budget.amount);
    std::lock_guard lock(state.mutex);
    const BudgetWindowBounds bounds = BudgetPeriodAt(budget.period, now);
    auto& counter = state.budget;
    if (!counter || counter->unit() != budget.unit || counter->bounds().start != bounds.start ||
        counter->bounds().end != bounds.end) {
      counter = std::make_shared<BudgetCounter>(limit, budget.unit, bounds);
    } else {
      counter->set_limit(limit);  // the amount may have been changed
    }
    return counter;
  }

  // The first request of a period on this instance starts the counter from what is
  // stored; those arriving meanwhile poll (on their own executor) until it has.
  Task<Expected<void>> StartCounter(BudgetCounter& counter, const std::string& key_id) {
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!counter.started()) {
      if (counter.TryBeginStart()) {
        const std::string since = FormatRfc3339(counter.bounds().start);
        auto spent = co_await usage.KeySpend(key_id, since);
        if (!spent) {
          counter.AbandonStart();
          log::Warn("cannot read a key's spend to start its budget",
                    {{"key_id", key_id}, {"error", spent.error().message}});
          co_return MakeError(ErrorCode::kUnavailable, "cannot check this API key's budget now; try again");
        }
        counter.Start(counter.unit() == BudgetUnit::kTokens ? spent->tokens : ToUnits(BudgetUnit::kUsd, spent->cost));
        co_return Expected<void>{};
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        co_return MakeError(ErrorCode::kUnavailable, "cannot check this API key's budget now; try again");
      }
      timer.expires_after(kStartPoll);
      co_await timer.async_wait(kUseAwaitable);
    }
    co_return Expected<void>{};
  }

  // Gives back what a refused request took from the buckets.
  static void GiveBack(KeyState& state, bool took_request, double tpm_taken) {
    std::lock_guard lock(state.mutex);
    if (took_request) state.rpm.tokens += 1;
    state.tpm.tokens += tpm_taken;
  }

  std::uint64_t Keep(Reservation reservation) {
    const std::uint64_t id = next_ticket.fetch_add(1, std::memory_order_relaxed);
    TicketShard& shard = ticket_shards[id % kShards];
    std::lock_guard lock(shard.mutex);
    shard.reservations.emplace(id, std::move(reservation));
    return id;
  }

  std::optional<Reservation> Take(std::uint64_t id) {
    TicketShard& shard = ticket_shards[id % kShards];
    std::lock_guard lock(shard.mutex);
    auto it = shard.reservations.find(id);
    if (it == shard.reservations.end()) return std::nullopt;
    Reservation reservation = std::move(it->second);
    shard.reservations.erase(it);
    return reservation;
  }

  KeyLimitsLookup lookup;
  store::UsageRepository& usage;
  const llm::ModelRegistry& models;
  const Clock& clock;
  metrics::Family<metrics::Counter>& refusals;
  metrics::Counter& refused_model;
  metrics::Counter& refused_rpm;
  metrics::Counter& refused_tpm;
  metrics::Counter& refused_budget;
  std::array<StateShard, kShards> state_shards;
  std::array<TicketShard, kShards> ticket_shards;
  std::atomic<std::uint64_t> next_ticket{1};  // 0 is "nothing reserved"
};

KeyLimiter::KeyLimiter(KeyLimitsLookup lookup, store::UsageRepository& usage, const llm::ModelRegistry& models,
                       const Clock& clock, metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(std::move(lookup), usage, models, clock, metrics)) {}

KeyLimiter::~KeyLimiter() = default;

Task<Expected<Ticket>> KeyLimiter::Admit(const Caller& caller, const std::string& model,
                                         std::int64_t estimated_tokens) {
  Impl& impl = *impl_;
  Ticket ticket;
  ticket.caller = caller;
  ticket.model = model;
  ticket.reserved_tokens = std::max<std::int64_t>(0, estimated_tokens);
  if (caller.api_key_id.empty()) co_return ticket;  // a session: no key, no key limits

  const std::string& key_id = ticket.caller.api_key_id;  // the ticket's copy lives through the awaits
  Task<Expected<std::shared_ptr<const KeyLimits>>> lookup = impl.lookup(key_id);
  auto found = co_await std::move(lookup);
  if (!found) {
    if (found.error().code == ErrorCode::kNotFound) {
      co_return MakeError(ErrorCode::kUnauthenticated, "invalid API key");
    }
    co_return Unexpected{std::move(found).error()};
  }
  const std::shared_ptr<const KeyLimits> limits = std::move(*found);
  if (limits->Unlimited()) co_return ticket;

  if (!impl.ModelAllowed(*limits, model)) {
    impl.refused_model.Inc();
    co_return MakeError(ErrorCode::kPermissionDenied,
                        fmt::format("this API key is not allowed to use the model '{}'", model.substr(0, 100)),
                        "model");
  }
  if (!limits->rpm && !limits->tpm && !limits->budget) co_return ticket;

  const std::shared_ptr<Impl::KeyState> state = impl.State(key_id);
  const SystemTime now = impl.clock.Now();
  const double tokens = static_cast<double>(ticket.reserved_tokens);
  Impl::Reservation reservation;
  reservation.state = state;
  {
    std::lock_guard lock(state->mutex);
    if (limits->rpm) {
      const double capacity = static_cast<double>(*limits->rpm);
      state->rpm.Refill(capacity, now);
      if (state->rpm.tokens < 1 - 1e-9) {
        impl.refused_rpm.Inc();
        co_return RateLimited(fmt::format("rate limit reached for this API key: {} requests per minute", *limits->rpm),
                              state->rpm.Wait(1, capacity));
      }
    }
    if (limits->tpm) {
      const double capacity = static_cast<double>(*limits->tpm);
      state->tpm.Refill(capacity, now);
      if (tokens > capacity) {
        impl.refused_tpm.Inc();
        co_return RateLimited(fmt::format("this request may use up to {} tokens, more than this API key's limit of {} "
                                          "tokens per minute; lower max_tokens",
                                          ticket.reserved_tokens, *limits->tpm),
                              std::chrono::milliseconds(0));
      }
      if (state->tpm.tokens < tokens - 1e-9) {
        impl.refused_tpm.Inc();
        co_return RateLimited(fmt::format("rate limit reached for this API key: {} tokens per minute; this request "
                                          "may use up to {}",
                                          *limits->tpm, ticket.reserved_tokens),
                              state->tpm.Wait(tokens, capacity));
      }
      state->tpm.tokens -= tokens;
      reservation.tpm_taken = tokens;
      reservation.tpm_capacity = capacity;
    }
    if (limits->rpm) state->rpm.tokens -= 1;
  }

  if (limits->budget) {
    const accounts::Budget& budget = *limits->budget;
    std::shared_ptr<BudgetCounter> counter = impl.Counter(*state, budget, now);
    if (!counter->started()) {
      auto started = co_await impl.StartCounter(*counter, key_id);
      if (!started) {
        Impl::GiveBack(*state, limits->rpm.has_value(), reservation.tpm_taken);
        co_return Unexpected{std::move(started).error()};
      }
    }
    const std::int64_t need = impl.Estimate(budget, model, ticket.reserved_tokens);
    if (!counter->TryReserve(need)) {
      Impl::GiveBack(*state, limits->rpm.has_value(), reservation.tpm_taken);
      impl.refused_budget.Inc();
      const std::int64_t used = counter->used();
      const std::int64_t left = std::max<std::int64_t>(0, counter->limit() - used);
      const std::string period = std::string(accounts::BudgetPeriodName(budget.period));
      const std::string resets = FormatRfc3339(counter->bounds().end);
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(counter->bounds().end - now);
      if (left == 0) {
        co_return RateLimited(fmt::format("this API key's budget of {} per {} is used up; it resets at {}",
                                          FormatUnits(budget.unit, counter->limit()), period, resets),
                              wait);
      }
      co_return RateLimited(fmt::format("this request may cost up to {}, more than the {} left of this API key's "
                                        "budget this {} (it resets at {}); lower max_tokens",
                                        FormatUnits(budget.unit, need), FormatUnits(budget.unit, left), period, resets),
                            wait);
    }
    reservation.budget = std::move(counter);
    reservation.budget_reserved = need;
  }

  if (reservation.tpm_capacity > 0 || reservation.budget) ticket.id = impl.Keep(std::move(reservation));
  co_return ticket;
}

void KeyLimiter::Settle(const Ticket& ticket, const TokenUsage& actual, double cost, UsageStatus) {
  if (ticket.id == 0) return;
  Impl& impl = *impl_;
  std::optional<Impl::Reservation> reservation = impl.Take(ticket.id);
  if (!reservation) {
    log::Warn("gateway ticket settled twice or never admitted", {{"ticket", static_cast<std::int64_t>(ticket.id)}});
    return;
  }
  const std::int64_t used_tokens = std::max<std::int64_t>(0, actual.prompt_tokens + actual.completion_tokens);
  if (reservation->tpm_capacity > 0) {
    std::lock_guard lock(reservation->state->mutex);
    Bucket& tpm = reservation->state->tpm;
    tpm.tokens =
        std::min(tpm.tokens + reservation->tpm_taken - static_cast<double>(used_tokens), reservation->tpm_capacity);
  }
  if (reservation->budget) {
    BudgetCounter& budget = *reservation->budget;
    const std::int64_t spent =
        budget.unit() == BudgetUnit::kTokens ? used_tokens : ToUnits(BudgetUnit::kUsd, std::max(0.0, cost));
    budget.Settle(reservation->budget_reserved, spent);
  }
}

std::size_t KeyLimiter::InFlight() const {
  std::size_t count = 0;
  for (auto& shard : impl_->ticket_shards) {
    std::lock_guard lock(shard.mutex);
    count += shard.reservations.size();
  }
  return count;
}

}  // namespace chatd::gateway
