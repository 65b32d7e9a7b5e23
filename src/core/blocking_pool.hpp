// The bounded pool where blocking work runs: SQLite calls, password hashing, file I/O,
// document parsing. I/O threads never make a blocking call; they `co_await Offload(...)`
// instead, which runs the function on a pool thread and resumes the caller on its own
// executor (run_on.hpp says why that takes co_spawn). The number of queued + running jobs
// is bounded: past the bound, Offload answers kUnavailable at once rather than growing a
// queue without limit.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <type_traits>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/run_on.hpp"

namespace chatd {

class BlockingPool {
 public:
  /// The threads are named `name` (core/thread_name.hpp). `nice` > 0 lowers their
  /// scheduling priority (Linux niceness is per thread), so CPU-heavy work such as
  /// password hashing yields the cores to the I/O threads.
  BlockingPool(std::size_t threads, std::size_t max_pending, std::string_view name, int nice = 0);
  ~BlockingPool() { Stop(); }
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  asio::thread_pool::executor_type executor() { return pool_.get_executor(); }
  std::size_t threads() const { return threads_; }
  std::size_t pending() const { return pending_.load(std::memory_order_relaxed); }

  /// Waits for queued work and joins the threads. Called once at shutdown.
  void Stop() {
    pool_.join();
  }

  /// Reserves a slot for one job; false when the pool is saturated.
  bool TryAcquire() {
    if (pending_.fetch_add(1, std::memory_order_relaxed) >= max_pending_) {
      pending_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void Release() { pending_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  asio::thread_pool pool_;
  std::size_t threads_;
  std::size_t max_pending_;
  std::atomic<std::size_t> pending_{0};
};

/// Runs `fn()` on the blocking pool and resumes the awaiting coroutine on its own
/// executor. Exceptions thrown by `fn` are rethrown in the caller. When the pool is
/// saturated the result is kUnavailable (for `fn` returning Expected<U>) or an exception.
template <typename F>
auto Offload(BlockingPool& pool, F fn) -> Task<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  if (!pool.TryAcquire()) {
    if constexpr (requires { R(MakeError(ErrorCode::kUnavailable, "")); }) {
      co_return R(MakeError(ErrorCode::kUnavailable, "server is overloaded, retry later"));
    } else {
      throw std::runtime_error("blocking pool saturated");
    }
  }
  struct Slot {
    BlockingPool& pool;
    ~Slot() { pool.Release(); }
  } slot{pool};
  co_return co_await RunOn(pool.executor(), std::move(fn));
}

}  // namespace chatd
