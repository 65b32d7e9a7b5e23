// Runs a coroutine to completion in a unit test, on a fresh single-threaded io_context
// that also runs whatever the coroutine started.
#pragma once

#include <optional>
#include <utility>

#include "core/asio.hpp"

namespace chatd::testing {

template <typename T>
T RunTask(Task<T> task) {
  asio::io_context io(1);
  std::optional<T> result;
  asio::co_spawn(
      io, [&]() -> Task<void> { result.emplace(co_await std::move(task)); }, asio::detached);
  io.run();
  return std::move(*result);
}

}  // namespace chatd::testing
