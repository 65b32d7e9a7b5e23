// AsyncSemaphore: a counting semaphore for coroutines, used for the SQLite writer (one
// permit) and the PostgreSQL connection pool (pool_size permits).
//
// Waiters queue in FIFO order and a released permit is handed straight to the oldest
// waiter, so a steady stream of new callers cannot starve an old one. Every wait is
// bounded by a timeout (a steady_timer on the waiter's executor). The state lives behind
// a shared_ptr so that a timer firing late never touches a destroyed semaphore.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "core/asio.hpp"

namespace chatd::store {

class AsyncSemaphore {
 public:
  explicit AsyncSemaphore(std::size_t permits);
  ~AsyncSemaphore();
  AsyncSemaphore(const AsyncSemaphore&) = delete;
  AsyncSemaphore& operator=(const AsyncSemaphore&) = delete;

  /// Takes one permit, waiting behind earlier callers for at most `timeout`. Resumes on
  /// the caller's executor. False on timeout, or once Close() has been called.
  Task<bool> Acquire(std::chrono::milliseconds timeout);
  /// Gives a permit back (to the oldest waiter, if any). Any thread.
  void Release();
  /// Fails all current and future Acquire() calls. Any thread; idempotent.
  void Close();
  /// Permits currently held.
  std::size_t in_use() const;
  std::size_t capacity() const { return capacity_; }

  struct State;

 private:
  std::size_t capacity_;
  std::shared_ptr<State> state_;
};

/// Holds one permit and gives it back when destroyed (or on Reset()). Movable.
class Permit {
 public:
  Permit() = default;
  explicit Permit(AsyncSemaphore& semaphore) : semaphore_(&semaphore) {}
  Permit(Permit&& other) noexcept : semaphore_(std::exchange(other.semaphore_, nullptr)) {}
  Permit& operator=(Permit&& other) noexcept {
    if (this != &other) {
      Reset();
      semaphore_ = std::exchange(other.semaphore_, nullptr);
    }
    return *this;
  }
  ~Permit() { Reset(); }
  void Reset() {
    if (semaphore_ != nullptr) std::exchange(semaphore_, nullptr)->Release();
  }
  explicit operator bool() const { return semaphore_ != nullptr; }

 private:
  AsyncSemaphore* semaphore_ = nullptr;
};

}  // namespace chatd::store
