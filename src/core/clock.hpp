// Wall-clock time behind an interface, so code whose behaviour depends on time (token
// expiry, lockouts, rate limits) can be tested with a clock the test moves.
#pragma once

#include <chrono>

#include "core/time.hpp"

namespace chatd {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  SystemTime Now() const override { return std::chrono::system_clock::now(); }
};

/// A clock that only moves when told to; for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SystemTime start = SystemTime{std::chrono::seconds(1'800'000'000)}) : now_(start) {}
  SystemTime Now() const override { return now_; }
  void Advance(std::chrono::milliseconds by) { now_ += by; }

 private:
  SystemTime now_;
};

}  // namespace chatd
