#include "chat/answer_writer.hpp"

#include <boost/asio/redirect_error.hpp>

#include "core/log.hpp"

namespace chatd::chat {

void AnswerWriter::Put(const asio::any_io_executor& executor, std::string user_id, std::string message_id,
                       MessageProgress progress) {
  bool start = false;
  {
    std::lock_guard lock(mutex_);
    MessageService::AnswerState& state = queued_[message_id];
    state.user_id = std::move(user_id);
    state.message_id = std::move(message_id);
    state.progress = std::move(progress);
    start = !running_;
    running_ = true;
  }
  if (start) asio::co_spawn(executor, Loop(), asio::detached);
}

Task<void> AnswerWriter::Loop() {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;  // apart: g++ 12
  asio::steady_timer timer(executor);
  while (true) {
    std::vector<MessageService::AnswerState> batch;
    {
      std::lock_guard lock(mutex_);
      if (queued_.empty()) {
        running_ = false;  // the next Put starts another loop
        co_return;
      }
      batch.reserve(queued_.size());
      for (auto& [id, state] : queued_) {
        writing_.insert(id);
        batch.push_back(std::move(state));
      }
      queued_.clear();
    }
    const auto started = std::chrono::steady_clock::now();
    auto written = co_await messages_.FlushAssistants(batch);
    // A failed batch is not retried: each answer's next Put (or its final write) carries it.
    if (!written) log::Warn("cannot store growing answers", {{"answers", batch.size()}, {"error", written.error().message}});
    {
      std::lock_guard lock(mutex_);
      writing_.clear();
    }
    timer.expires_at(started + interval_);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
  }
}

Task<void> AnswerWriter::Settle(const std::string& message_id) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;  // apart: g++ 12
  asio::steady_timer wait(executor);
  while (true) {
    {
      std::lock_guard lock(mutex_);
      queued_.erase(message_id);
      if (!writing_.contains(message_id)) co_return;
    }
    // Rare (the answer ended while its last growing state is being written), and short.
    wait.expires_after(std::chrono::milliseconds(2));
    boost::system::error_code ec;
    co_await wait.async_wait(asio::redirect_error(kUseAwaitable, ec));
  }
}

}  // namespace chatd::chat
