#include "core/blocking_pool.hpp"

#include <pthread.h>

#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/thread_name.hpp"

#include <gtest/gtest.h>

namespace chatd {
namespace {

TEST(Offload, RunsOnAPoolThreadAndResumesOnTheCallersThread) {
  BlockingPool pool(2, 16, "test-pool");
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

std::string ThisThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

TEST(BlockingPool, NamesItsThreads) {
  BlockingPool pool(2, 16, "chatd-test-pool-long");
  asio::io_context io(1);
  std::string name;
  asio::co_spawn(
      io, [&]() -> Task<void> { name = co_await Offload(pool, [] { return ThisThreadName(); }); }, asio::detached);
  io.run();
  EXPECT_EQ(name, "chatd-test-pool");  // Linux keeps 15 bytes
}

TEST(OnEveryThread, RunsOnceOnEachThreadOfThePool) {
  asio::thread_pool pool(3);
  std::mutex mutex;
  std::multiset<std::thread::id> ran;
  OnEveryThread(pool, 3, [&] {
    std::lock_guard lock(mutex);
    ran.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(ran.size(), 3u);
  EXPECT_EQ(std::set<std::thread::id>(ran.begin(), ran.end()).size(), 3u);  // no thread twice
  pool.join();
}

TEST(Offload, RethrowsExceptionsInTheCaller) {
  BlockingPool pool(1, 16, "test-pool");
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
  BlockingPool pool(1, 0, "test-pool");
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
