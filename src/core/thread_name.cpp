#include "core/thread_name.hpp"

#include <pthread.h>

#include <latch>
#include <memory>
#include <string>

namespace chatd {

void NameThisThread(std::string_view name) {
  const std::string truncated(name.substr(0, 15));
  pthread_setname_np(pthread_self(), truncated.c_str());
}

void OnEveryThread(asio::thread_pool& pool, std::size_t threads, const std::function<void()>& each) {
  // One task per thread, each held until all have started, so no thread runs two.
  auto started = std::make_shared<std::latch>(static_cast<std::ptrdiff_t>(threads) + 1);
  for (std::size_t i = 0; i < threads; ++i) {
    asio::post(pool, [started, each] {
      each();
      started->arrive_and_wait();
    });
  }
  started->arrive_and_wait();
}

}  // namespace chatd
