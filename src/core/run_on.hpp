// RunOn: run a blocking function on another executor (a pool or a dedicated thread) and resume the
// awaiting coroutine on its own executor.
//
// Why not `co_await asio::post(pool, use_awaitable)`? In Boost 1.74 that completion is
// dispatched through the awaiting coroutine's executor, so the coroutine resumes on its
// own I/O thread, not on the pool: the blocking call would still run on the I/O thread.
// co_spawn on the target executor really runs the body there, and its use_awaitable
// completion brings the caller back to its executor (tracking work, so a caller's
// io_context does not run dry while it waits).
#pragma once

#include <optional>
#include <type_traits>
#include <utility>

#include "core/asio.hpp"

namespace chatd {

/// Runs `fn()` on `executor` and returns its result on the caller's executor. Exceptions
/// thrown by `fn` are rethrown in the caller. `fn` is invoked exactly once.
template <typename Executor, typename F>
Task<std::invoke_result_t<F&>> RunOn(Executor executor, F fn) {
  using R = std::invoke_result_t<F&>;
  if constexpr (std::is_void_v<R>) {
    co_await asio::co_spawn(
        executor,
        [&]() -> Task<void> {
          fn();
          co_return;
        },
        kUseAwaitable);
  } else {
    // co_spawn's completion needs a default-constructible value; Expected<T> is not.
    std::optional<R> result = co_await asio::co_spawn(
        executor, [&]() -> Task<std::optional<R>> { co_return std::optional<R>(fn()); }, kUseAwaitable);
    co_return std::move(*result);
  }
}

}  // namespace chatd
