#include "chat/generation.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>

namespace chatd::chat {

// A follower waiting for the log to grow: its timer lives on the follower's executor and
// is only ever touched there; the producer wakes it by posting a cancel. `pending`
// coalesces wake-ups, so a fast producer posts at most one per follower read.
struct Generation::Waiter {
  explicit Waiter(asio::any_io_executor executor) : timer(std::move(executor)) {}
  asio::steady_timer timer;
  std::atomic<bool> pending{false};
};

Generation::Generation(GenerationInfo info, asio::any_io_executor executor)
    : info_(std::move(info)), executor_(std::move(executor)) {}

void Generation::AppendDelta(std::string_view text) {
  if (text.empty()) return;  // an empty delta would be an event carrying nothing
  std::lock_guard lock(mutex_);
  if (ended_) return;
  content_.append(text);
  delta_ends_.push_back(static_cast<std::uint32_t>(content_.size()));
  WakeWaiters();
}

void Generation::Finish(TurnEvent last) {
  std::lock_guard lock(mutex_);
  if (ended_) return;
  ended_ = true;
  ended_at_ = std::chrono::steady_clock::now();
  last_ = std::move(last);
  last_.assistant_message_id = info_.message_id;
  WakeWaiters();
}

void Generation::OnCancel(std::function<void()> cancel) { cancel_ = std::move(cancel); }

std::string Generation::Content() const {
  std::lock_guard lock(mutex_);
  return content_;
}

std::size_t Generation::content_size() const {
  std::lock_guard lock(mutex_);
  return content_.size();
}

bool Generation::ended() const {
  std::lock_guard lock(mutex_);
  return ended_;
}

std::chrono::steady_clock::time_point Generation::ended_at() const {
  std::lock_guard lock(mutex_);
  return ended_at_;
}

void Generation::Cancel() {
  cancel_requested_.store(true, std::memory_order_relaxed);
  // The action touches the provider's stream, which belongs to the generation's executor.
  asio::post(executor_, [self = shared_from_this()] {
    if (self->cancel_) self->cancel_();
  });
}

void Generation::EventAt(std::uint64_t id, TurnEvent& event) const {
  const std::size_t delta = id - 2;
  if (id > 1 && delta >= delta_ends_.size()) {  // the final event
    event = last_;
    event.id = id;
    return;
  }
  // Assigned field by field, so a reused event keeps its strings' buffers.
  event.id = id;
  event.assistant_message_id = info_.message_id;
  event.usage = {};
  event.finish_reason.clear();
  if (id == 1) {
    event.type = TurnEvent::Type::kMessageCreated;
    event.conversation_id = info_.conversation_id;
    event.user_message_id = info_.user_message_id;
    event.content.clear();
    return;
  }
  const std::uint32_t begin = delta == 0 ? 0 : delta_ends_[delta - 1];
  event.type = TurnEvent::Type::kDelta;
  event.conversation_id.clear();
  event.user_message_id.clear();
  event.content.assign(content_, begin, delta_ends_[delta] - begin);
}

std::size_t Generation::EventsAfter(std::uint64_t after, std::vector<TurnEvent>& events, bool& ended) const {
  std::lock_guard lock(mutex_);
  const std::uint64_t count = 1 + delta_ends_.size() + (ended_ ? 1 : 0);
  ended = ended_;
  if (after >= count) return 0;
  const std::size_t n = count - after;
  if (events.size() < n) events.resize(n);
  for (std::size_t i = 0; i < n; ++i) EventAt(after + 1 + i, events[i]);
  return n;
}

void Generation::WakeWaiters() {
  for (const auto& waiter : waiters_) {
    if (waiter->pending.exchange(true)) continue;
    // A follower on the producer's own executor (the response that started the turn, as a
    // rule) is on this thread: cancel its timer here, one trip through the scheduler
    // fewer per event. The cancel only posts the wait's completion, so the follower does
    // not run inside this call (nor under mutex_).
    if (waiter->timer.get_executor() == executor_) {
      waiter->timer.cancel();
      continue;
    }
    asio::post(waiter->timer.get_executor(), [waiter] { waiter->timer.cancel(); });
  }
}

Task<bool> Generation::Follow(std::uint64_t after, TurnSink& sink, std::chrono::milliseconds quiet) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;  // apart: g++ 12 and co_await
  auto waiter = std::make_shared<Waiter>(executor);
  {
    std::lock_guard lock(mutex_);
    waiters_.push_back(waiter);
  }
  struct Unsubscribe {
    Generation& generation;
    const std::shared_ptr<Waiter>& waiter;
    ~Unsubscribe() {
      std::lock_guard lock(generation.mutex_);
      std::erase(generation.waiters_, waiter);
    }
  } unsubscribe{*this, waiter};

  bool client_gone = false;
  std::vector<TurnEvent> events;  // reused from read to read
  while (true) {
    // Clear before reading: anything appended after the read posts a new wake-up, which
    // runs after the wait below has started (this executor runs one handler at a time).
    waiter->pending.store(false);
    bool ended = false;
    const std::size_t count = EventsAfter(after, events, ended);
    for (std::size_t i = 0; i < count; ++i) {
      if (!co_await sink.Send(events[i])) {
        client_gone = true;
        break;
      }
      after = events[i].id;
    }
    if (client_gone || ended) break;
    if (count > 0) continue;
    waiter->timer.expires_after(quiet);
    boost::system::error_code ec;
    co_await waiter->timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
    if (ec == asio::error::operation_aborted) continue;  // woken: there is more to read
    // Not `ec && !co_await ...`: g++ 12 miscompiles co_await inside && and ?:.
    const bool alive = co_await sink.Ping();
    if (!alive) {
      client_gone = true;
      break;
    }
  }
  if (client_gone && info_.cancel_on_disconnect) Cancel();
  co_return !client_gone;
}

}  // namespace chatd::chat
