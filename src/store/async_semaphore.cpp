#include "store/async_semaphore.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <mutex>
#include <vector>

namespace chatd::store {

namespace {

// One suspended Acquire(). Complete() is called exactly once, by whoever removes the
// waiter from the queue (Release, Close, or the waiter's own timer).
class Waiter {
 public:
  virtual ~Waiter() = default;
  virtual void Complete(bool granted) = 0;
};

template <typename Handler>
class WaiterFor final : public Waiter {
 public:
  WaiterFor(Handler handler, asio::any_io_executor executor)
      : handler_(std::move(handler)), timer_(std::move(executor)) {}

  asio::steady_timer& timer() { return timer_; }

  void Complete(bool granted) override {
    // The timer's handler may still run; it finds the waiter gone and does nothing.
    timer_.cancel();
    auto executor = asio::get_associated_executor(handler_);
    asio::post(executor, [handler = std::move(handler_), granted]() mutable { handler(granted); });
  }

 private:
  Handler handler_;
  asio::steady_timer timer_;
};

}  // namespace

struct AsyncSemaphore::State {
  std::mutex mutex;
  std::size_t available = 0;
  bool closed = false;
  std::deque<std::shared_ptr<Waiter>> waiters;

  // Removes `waiter` from the queue; true when it was still there.
  bool Remove(const Waiter* waiter) {
    auto it =
        std::find_if(waiters.begin(), waiters.end(), [waiter](const auto& entry) { return entry.get() == waiter; });
    if (it == waiters.end()) return false;
    waiters.erase(it);
    return true;
  }
};

AsyncSemaphore::AsyncSemaphore(std::size_t permits) : capacity_(permits), state_(std::make_shared<State>()) {
  state_->available = permits;
}

AsyncSemaphore::~AsyncSemaphore() { Close(); }

Task<bool> AsyncSemaphore::Acquire(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->closed) co_return false;
    if (state_->waiters.empty() && state_->available > 0) {
      --state_->available;
      co_return true;
    }
  }
  auto executor = co_await asio::this_coro::executor;
  auto initiate = [state = state_, executor, timeout](auto handler) {
    using Handler = std::decay_t<decltype(handler)>;
    std::unique_lock lock(state->mutex);
    // The state may have changed since the fast path above.
    if (state->closed || (state->waiters.empty() && state->available > 0)) {
      const bool granted = !state->closed;
      if (granted) --state->available;
      lock.unlock();
      auto handler_executor = asio::get_associated_executor(handler);
      asio::post(handler_executor, [handler = std::move(handler), granted]() mutable { handler(granted); });
      return;
    }
    auto waiter = std::make_shared<WaiterFor<Handler>>(std::move(handler), executor);
    state->waiters.push_back(waiter);
    // Started under the lock, so a Release() cannot cancel the timer before it waits.
    waiter->timer().expires_after(timeout);
    waiter->timer().async_wait([state, waiter](const boost::system::error_code&) {
      bool timed_out = false;
      {
        std::lock_guard lock(state->mutex);
        timed_out = state->Remove(waiter.get());
      }
      if (timed_out) waiter->Complete(false);
    });
  };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(bool)>(std::move(initiate),
                                                                                     asio::use_awaitable);
}

void AsyncSemaphore::Release() {
  std::shared_ptr<Waiter> next;
  {
    std::lock_guard lock(state_->mutex);
    if (!state_->waiters.empty()) {
      next = std::move(state_->waiters.front());
      state_->waiters.pop_front();
    } else {
      assert(state_->available < capacity_);
      ++state_->available;
    }
  }
  if (next) next->Complete(true);
}

void AsyncSemaphore::Close() {
  std::deque<std::shared_ptr<Waiter>> waiters;
  {
    std::lock_guard lock(state_->mutex);
    state_->closed = true;
    waiters.swap(state_->waiters);
  }
  for (auto& waiter : waiters) waiter->Complete(false);
}

std::size_t AsyncSemaphore::in_use() const {
  std::lock_guard lock(state_->mutex);
  return capacity_ - state_->available;
}

}  // namespace chatd::store
