#include "chat/answer_writer.hpp"

#include <algorithm>
#include <iterator>
#include <vector>

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
    // In slices, each its own transaction: a turn waiting to store its messages waits for
    // one slice, not for every answer in flight, and only one slice's rows are copied
    // into statement parameters at a time (bench/streams: peak memory).
    for (std::size_t begin = 0; begin < batch.size(); begin += kSliceAnswers) {
      const std::size_t end = std::min(batch.size(), begin + kSliceAnswers);
      std::vector<std::string> ids;
      ids.reserve(end - begin);
      for (std::size_t i = begin; i < end; ++i) ids.push_back(batch[i].message_id);
      std::vector<MessageService::AnswerState> slice(std::make_move_iterator(batch.begin() + begin),
                                                     std::make_move_iterator(batch.begin() + end));
      auto written = co_await messages_.FlushAssistants(std::move(slice));
      // A failed slice is not retried: each answer's next Put (or its final write) carries it.
      if (!written) log::Warn("cannot store growing answers", {{"answers", ids.size()}, {"error", written.error().message}});
      std::lock_guard lock(mutex_);
      for (const std::string& id : ids) writing_.erase(id);
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
