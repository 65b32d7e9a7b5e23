// UsageRecorder: the UsageSink that stores usage events without a database write on the
// request path (docs/architecture.md "Usage pipeline").
//
// Record() — on any I/O thread — turns the event into a row (its id made now, so a
// retried batch is stored once) and appends it to a bounded in-memory buffer under a
// mutex: no I/O, no waiting. A flusher coroutine on the recorder's own thread (and
// io_context, which also drives PostgreSQL's sockets) writes the buffer in batches of at
// most `batch_size` rows, one transaction each, every `flush_interval` or as soon as a
// batch is full.
//
// When a write fails, the batch goes back to the front of the buffer and the flusher
// waits (retry_backoff, doubling up to max_retry_backoff) before trying again, so a
// database that is briefly down loses nothing while the buffer holds. The bound counts
// every event held, the batch being written included; past it, Record() drops the new
// event and counts it in usage_events_dropped_total. A batch the database refuses for
// another reason than being unavailable (a bug, a constraint) is dropped after three
// tries, counted the same way, so one bad row cannot stop the pipeline.
//
// Stop() — graceful shutdown, after the HTTP server has drained — flushes what is
// buffered, retrying for at most shutdown_timeout, then joins the thread; what is still
// unwritten then is counted as dropped and logged.
//
// Metrics: usage_events_recorded_total (stored), usage_events_dropped_total,
// usage_events_queue_depth (held in memory, the batch being written included).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/asio.hpp"
#include "core/metrics.hpp"
#include "gateway/usage.hpp"
#include "store/usage_repository.hpp"

namespace chatd::gateway {

struct UsageRecorderConfig {
  std::size_t buffer_size = 10'000;                     // USAGE_BUFFER_SIZE: events held at most
  std::size_t batch_size = 500;                         // USAGE_BATCH_SIZE: rows per transaction
  std::chrono::milliseconds flush_interval{1000};       // USAGE_FLUSH_INTERVAL
  std::chrono::milliseconds retry_backoff{250};         // first wait after a failed write
  std::chrono::milliseconds max_retry_backoff{30'000};  // the longest wait between tries
  std::chrono::milliseconds shutdown_timeout{10'000};   // USAGE_SHUTDOWN_TIMEOUT: Stop()'s flush
};

/// The row stored for an event (exposed for tests).
store::UsageEventRecord ToRecord(UsageEvent event);

class UsageRecorder final : public UsageSink {
 public:
  UsageRecorder(UsageRecorderConfig config, store::UsageRepository& repository, metrics::Registry& metrics);
  /// Stops (and flushes) if still running.
  ~UsageRecorder() override;
  UsageRecorder(const UsageRecorder&) = delete;
  UsageRecorder& operator=(const UsageRecorder&) = delete;

  /// Starts the flusher thread. Events recorded before are kept and written then.
  void Start();
  /// Never blocks or suspends: buffers, or drops and counts when the buffer is full or
  /// the recorder has stopped. Thread-safe.
  void Record(UsageEvent event) override;
  /// Flushes (bounded by shutdown_timeout) and joins the flusher. Idempotent. Call from
  /// outside the recorder (e.g. the main thread at shutdown), never from its thread.
  void Stop();

  /// Events held in memory now (the batch being written included).
  std::size_t Buffered() const;

 private:
  Task<void> Run();
  Task<void> Wait(std::chrono::milliseconds duration);
  std::vector<store::UsageEventRecord> TakeBatch();
  void Requeue(std::vector<store::UsageEventRecord>& batch);
  void Written(std::size_t count);
  void Drop(std::size_t count, std::string_view why);

  const UsageRecorderConfig config_;
  store::UsageRepository& repository_;
  metrics::Counter& recorded_;
  metrics::Counter& dropped_;
  metrics::Gauge& depth_;

  mutable std::mutex mutex_;
  std::deque<store::UsageEventRecord> queue_;  // oldest first
  std::size_t writing_ = 0;                    // rows of the batch being written
  bool wake_posted_ = false;                   // a full batch already woke the flusher
  bool stopping_ = false;
  bool started_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};

  asio::io_context io_;  // posted to from every I/O thread (wake-ups), run by one
  asio::steady_timer timer_{io_};
  bool backing_off_ = false;  // the flusher's thread only: a wake must not cut a backoff short
  std::thread thread_;
  std::atomic<bool> warned_full_{false};
};

}  // namespace chatd::gateway
