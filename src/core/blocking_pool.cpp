#include "core/blocking_pool.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <latch>
#include <memory>

namespace chatd {

BlockingPool::BlockingPool(std::size_t threads, std::size_t max_pending, int nice)
    : pool_(threads), threads_(threads), max_pending_(max_pending) {
  if (nice == 0) return;
  // One task per thread, each held until all have started, so every thread runs one.
  auto started = std::make_shared<std::latch>(static_cast<std::ptrdiff_t>(threads) + 1);
  for (std::size_t i = 0; i < threads; ++i) {
    asio::post(pool_, [started, nice] {
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
      started->arrive_and_wait();
    });
  }
  started->arrive_and_wait();
}

}  // namespace chatd
