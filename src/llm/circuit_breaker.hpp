// A circuit breaker for one upstream, shared by every I/O thread. After `failures`
// consecutive failures it opens: calls are refused at once for `cooldown`, sparing a dead
// upstream (and our users) the wait for every request to time out. Then it is half-open:
// one call goes through as a probe; its success closes the breaker, its failure opens it
// for another cool-down. A short mutex guards the state: it is taken twice per upstream
// call, never across a wait.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>

namespace chatd::llm {

struct BreakerConfig {
  int failures = 5;                               // consecutive failures that open it; 0: never
  std::chrono::milliseconds cooldown{30'000};     // how long it stays open
};

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State { kClosed, kOpen, kHalfOpen };

  explicit CircuitBreaker(BreakerConfig config, std::function<Clock::time_point()> now = Clock::now)
      : config_(config), now_(std::move(now)) {}

  /// Whether a call may go now. Every true must be followed by exactly one OnSuccess,
  /// OnFailure or OnNeutral (a half-open breaker lets one probe through at a time).
  bool Allow();
  void OnSuccess();
  /// Returns true when this failure opened the breaker.
  bool OnFailure();
  /// The call ended without telling anything about the upstream's health (e.g. the
  /// request was invalid): a probe slot is released, nothing else changes.
  void OnNeutral();

  State state();
  /// Whether a call now would be refused: open within its cool-down, or half-open with its
  /// probe out. Unlike Allow(), takes no probe slot: a balancer asks before choosing.
  bool Refusing() const;
  /// While open: how long until the next probe may go.
  std::chrono::milliseconds RemainingCooldown();

 private:
  BreakerConfig config_;
  std::function<Clock::time_point()> now_;
  mutable std::mutex mutex_;
  State state_ = State::kClosed;
  int consecutive_failures_ = 0;
  Clock::time_point open_until_{};
  bool probing_ = false;
};

}  // namespace chatd::llm
