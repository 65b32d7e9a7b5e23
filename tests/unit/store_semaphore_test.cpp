#include <chrono>
#include <vector>

#include <gtest/gtest.h>

#include "store/async_semaphore.hpp"

namespace chatd::store {
namespace {

using namespace std::chrono_literals;

TEST(AsyncSemaphoreTest, GrantsImmediatelyWhileFree) {
  asio::io_context io;
  AsyncSemaphore semaphore(2);
  std::vector<bool> granted;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        granted.push_back(co_await semaphore.Acquire(1s));
        granted.push_back(co_await semaphore.Acquire(1s));
      },
      asio::detached);
  io.run();
  EXPECT_EQ(granted, (std::vector<bool>{true, true}));
  EXPECT_EQ(semaphore.in_use(), 2u);
  semaphore.Release();
  semaphore.Release();
  EXPECT_EQ(semaphore.in_use(), 0u);
}

TEST(AsyncSemaphoreTest, WaitersAreServedInArrivalOrder) {
  asio::io_context io;
  AsyncSemaphore semaphore(1);
  std::vector<int> order;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        EXPECT_TRUE(co_await semaphore.Acquire(1s));
        // Let the waiters queue up, then hand the permit on.
        asio::steady_timer timer(co_await asio::this_coro::executor, 20ms);
        co_await timer.async_wait(kUseAwaitable);
        semaphore.Release();
      },
      asio::detached);
  for (int i = 1; i <= 3; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> Task<void> {
          EXPECT_TRUE(co_await semaphore.Acquire(5s));
          order.push_back(i);
          semaphore.Release();
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(semaphore.in_use(), 0u);
}

TEST(AsyncSemaphoreTest, WaitTimesOut) {
  asio::io_context io;
  AsyncSemaphore semaphore(1);
  bool second = true;
  auto started = std::chrono::steady_clock::now();
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        EXPECT_TRUE(co_await semaphore.Acquire(1s));
        second = co_await semaphore.Acquire(30ms);
      },
      asio::detached);
  io.run();
  EXPECT_FALSE(second);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 30ms);
  EXPECT_EQ(semaphore.in_use(), 1u);
  semaphore.Release();
}

TEST(AsyncSemaphoreTest, CloseFailsWaitersAndLaterCalls) {
  asio::io_context io;
  AsyncSemaphore semaphore(1);
  bool waiter = true;
  bool later = true;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        EXPECT_TRUE(co_await semaphore.Acquire(1s));
        asio::co_spawn(
            co_await asio::this_coro::executor, [&]() -> Task<void> { waiter = co_await semaphore.Acquire(5s); },
            asio::detached);
        asio::steady_timer timer(co_await asio::this_coro::executor, 10ms);
        co_await timer.async_wait(kUseAwaitable);
        semaphore.Close();
        later = co_await semaphore.Acquire(1s);
      },
      asio::detached);
  auto started = std::chrono::steady_clock::now();
  io.run();
  EXPECT_FALSE(waiter);
  EXPECT_FALSE(later);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

TEST(AsyncSemaphoreTest, PermitReleasesOnDestruction) {
  AsyncSemaphore semaphore(1);
  asio::io_context io;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        EXPECT_TRUE(co_await semaphore.Acquire(1s));
        Permit permit(semaphore);
        Permit moved = std::move(permit);
        EXPECT_FALSE(permit);
        EXPECT_TRUE(moved);
      },
      asio::detached);
  io.run();
  EXPECT_EQ(semaphore.in_use(), 0u);
}

}  // namespace
}  // namespace chatd::store
