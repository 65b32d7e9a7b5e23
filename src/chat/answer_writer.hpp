// Growing answers, written in batches. A generation hands over its answer as it is now
// (Put) about once a second; one coroutine writes all that are due, in transactions of up
// to kSliceAnswers, then sleeps for the interval. With thousands of answers streaming,
// that is a few commits a second instead of thousands (SQLite has one writer; PostgreSQL
// one round trip per commit saved), and the relay never waits for the database.
//
// The final state of an answer is written directly by its generation, after Settle(): a
// queued or in-flight batch must not land after it and put "streaming" back.
//
// Threads: Put and Settle may be called from any I/O thread; the loop runs on the
// executor of the Put that found it idle, and ends when there is nothing left to write,
// so an idle process (or a test's io_context) has no timer pending.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "chat/message_service.hpp"
#include "core/asio.hpp"

namespace chatd::chat {

class AnswerWriter {
 public:
  AnswerWriter(MessageService& messages, std::chrono::milliseconds interval)
      : messages_(messages), interval_(interval) {}
  AnswerWriter(const AnswerWriter&) = delete;
  AnswerWriter& operator=(const AnswerWriter&) = delete;

  /// Queues `progress` for `message_id`, replacing what was queued for it. Starts the
  /// loop on `executor` when it is not running.
  void Put(const asio::any_io_executor& executor, std::string user_id, std::string message_id,
           MessageProgress progress);

  /// Drops what is queued for `message_id` and waits until no batch being written holds
  /// it. On the caller's executor.
  Task<void> Settle(const std::string& message_id);

 private:
  Task<void> Loop();

  static constexpr std::size_t kSliceAnswers = 200;  // answers per transaction

  MessageService& messages_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::unordered_map<std::string, MessageService::AnswerState> queued_;  // by message id
  std::unordered_set<std::string> writing_;                              // ids in the batch in flight
  bool running_ = false;
};

}  // namespace chatd::chat
