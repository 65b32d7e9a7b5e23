#include "llm/circuit_breaker.hpp"

namespace chatd::llm {

bool CircuitBreaker::Allow() {
  std::lock_guard lock(mutex_);
  if (state_ == State::kOpen && now_() >= open_until_) state_ = State::kHalfOpen;
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return false;
    case State::kHalfOpen:
      if (probing_) return false;
      probing_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::OnSuccess() {
  std::lock_guard lock(mutex_);
  state_ = State::kClosed;
  consecutive_failures_ = 0;
  probing_ = false;
}

bool CircuitBreaker::OnFailure() {
  std::lock_guard lock(mutex_);
  const bool probe = state_ == State::kHalfOpen;
  probing_ = false;
  ++consecutive_failures_;
  if (config_.failures <= 0) return false;
  if (probe || (state_ == State::kClosed && consecutive_failures_ >= config_.failures)) {
    state_ = State::kOpen;
    open_until_ = now_() + config_.cooldown;
    return true;
  }
  return false;
}

void CircuitBreaker::OnNeutral() {
  std::lock_guard lock(mutex_);
  probing_ = false;
}

CircuitBreaker::State CircuitBreaker::state() {
  std::lock_guard lock(mutex_);
  if (state_ == State::kOpen && now_() >= open_until_) return State::kHalfOpen;
  return state_;
}

bool CircuitBreaker::Refusing() const {
  std::lock_guard lock(mutex_);
  if (state_ == State::kOpen) return now_() < open_until_;
  return state_ == State::kHalfOpen && probing_;
}

std::chrono::milliseconds CircuitBreaker::RemainingCooldown() {
  std::lock_guard lock(mutex_);
  if (state_ != State::kOpen) return std::chrono::milliseconds(0);
  const auto left = open_until_ - now_();
  return left.count() > 0 ? std::chrono::ceil<std::chrono::milliseconds>(left) : std::chrono::milliseconds(0);
}

}  // namespace chatd::llm
