// One answer being generated, decoupled from whoever listens to it. The generation runs
// on its own coroutine (ChatService) and appends to an event log here; any number of
// followers — the SSE response that started it, a client resuming after a dropped
// connection (Last-Event-ID), a WebSocket — read the log from where they are and wait for
// more. A follower that leaves does not stop the generation (unless the turn asked for
// `on_disconnect: cancel`), so an answer is finished and stored whoever listens.
//
// The log is compact, because thousands of generations run at once: the deltas are the
// answer's text plus one offset per delta, and events are materialised on read.
// Event ids are 1 for message.created, then one per delta, then the final event.
//
// Threads: the producer (the generation's coroutine) runs on the generation's executor;
// followers read from any thread. The log is guarded by a mutex; a follower is woken by
// a cancel posted to its own timer, so nothing blocks and no follower runs on the
// producer's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "llm/provider.hpp"

namespace chatd::chat {

struct TurnEvent {
  enum class Type { kMessageCreated, kDelta, kCompleted, kError };
  Type type = Type::kDelta;
  std::uint64_t id = 0;              // the event's position in its generation's log, from 1
  std::string conversation_id;       // kMessageCreated
  std::string user_message_id;       // kMessageCreated
  std::string assistant_message_id;  // every event
  std::string content;               // kDelta
  llm::Usage usage;                  // kCompleted
  std::string finish_reason;         // kCompleted
  Error error;                       // kError
};

/// Where a follower's events go: an SSE response, a WebSocket, or a collector.
class TurnSink {
 public:
  virtual ~TurnSink() = default;
  /// Delivers one event. False once the client is gone.
  virtual Task<bool> Send(const TurnEvent& event) = 0;
  /// Called after a quiet interval (no event); an SSE sink sends a `: ping` comment so
  /// proxies and clients see the stream is alive. False once the client is gone.
  virtual Task<bool> Ping() { co_return true; }
};

struct GenerationInfo {
  std::string message_id;  // the assistant message; also the generation's id
  std::string conversation_id;
  std::string user_message_id;
  std::string user_id;        // only the owner may follow or cancel it
  std::string credential_id;  // the API key that started it; empty for a session
  bool cancel_on_disconnect = false;
};

class Generation : public std::enable_shared_from_this<Generation> {
 public:
  Generation(GenerationInfo info, asio::any_io_executor executor);
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  const GenerationInfo& info() const { return info_; }
  /// The executor the generation runs on.
  const asio::any_io_executor& executor() const { return executor_; }

  // ---- The producer (on executor()) ----
  void AppendDelta(std::string_view text);
  /// Ends the log with kCompleted or kError; later appends are ignored.
  void Finish(TurnEvent last);
  /// What to run when the generation is to stop; replaces the previous one.
  void OnCancel(std::function<void()> cancel);
  /// The answer so far.
  std::string Content() const;
  std::size_t content_size() const;

  // ---- Anyone, any thread ----
  /// Events after `after` (an event id; 0 for all), in order, written into the front of
  /// `events`, whose elements (and their strings' buffers) are reused, so a follower
  /// allocates nothing per event; elements past them are left as they were. Returns how
  /// many; `ended` tells whether the last of them is the final event.
  std::size_t EventsAfter(std::uint64_t after, std::vector<TurnEvent>& events, bool& ended) const;
  bool ended() const;
  /// Asks the generation to stop: runs the OnCancel action on the generation's executor.
  void Cancel();
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_relaxed); }
  /// When the generation ended (steady clock), for keeping finished ones a while.
  std::chrono::steady_clock::time_point ended_at() const;

  /// Sends the log to `sink` from the event after `after` on, as it grows, until the
  /// final event (true) or until the sink reports its client gone (false). After every
  /// `quiet` interval without an event, pings the sink. Runs on the caller's executor.
  /// A follower that leaves stops the generation when it asked for on_disconnect: cancel.
  Task<bool> Follow(std::uint64_t after, TurnSink& sink, std::chrono::milliseconds quiet);

 private:
  struct Waiter;
  void EventAt(std::uint64_t id, TurnEvent& event) const;  // with mutex_ held; overwrites `event`
  void WakeWaiters();                         // with mutex_ held

  const GenerationInfo info_;
  const asio::any_io_executor executor_;
  mutable std::mutex mutex_;
  std::string content_;
  std::vector<std::uint32_t> delta_ends_;  // content_ offset after each delta
  bool ended_ = false;
  TurnEvent last_;
  std::chrono::steady_clock::time_point ended_at_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  std::function<void()> cancel_;  // only touched on executor_
  std::atomic<bool> cancel_requested_{false};
};

}  // namespace chatd::chat
