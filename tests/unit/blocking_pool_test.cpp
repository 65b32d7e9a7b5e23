#include "core/blocking_pool.hpp"

#include <thread>

#include <gtest/gtest.h>

namespace chatd {
namespace {

TEST(Offload, RunsOnAPoolThreadAndResumesOnTheCallersThread) {
  BlockingPool pool(2, 16);
  asio::io_context io(1);
  std::thread::id caller, worker, resumed;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        caller = std::this_thread::get_id();
        worker = co_await Offload(pool, [] { return std::this_thread::get_id(); });
        resumed = std::this_thread::get_id();
      },
      asio::detached);
  io.run();
  EXPECT_NE(worker, caller);
  EXPECT_EQ(resumed, caller);
}

TEST(Offload, RethrowsExceptionsInTheCaller) {
  BlockingPool pool(1, 16);
  asio::io_context io(1);
  bool caught = false;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        try {
          co_await Offload(pool, []() -> int { throw std::runtime_error("boom"); });
        } catch (const std::runtime_error&) {
          caught = true;
        }
      },
      asio::detached);
  io.run();
  EXPECT_TRUE(caught);
}

TEST(Offload, SaturatedPoolAnswersUnavailableInsteadOfQueueing) {
  BlockingPool pool(1, 0);
  asio::io_context io(1);
  std::optional<Expected<int>> result;
  asio::co_spawn(
      io, [&]() -> Task<void> { result.emplace(co_await Offload(pool, []() -> Expected<int> { return 1; })); },
      asio::detached);
  io.run();
  ASSERT_TRUE(result);
  ASSERT_FALSE(*result);
  EXPECT_EQ(result->error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace chatd
