#include "gateway/usage_recorder.hpp"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <utility>

#include <boost/asio/redirect_error.hpp>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "core/time.hpp"

namespace chatd::gateway {

namespace {

// A batch refused for another reason than an unavailable database is dropped after
// this many tries.
constexpr int kMaxHardFailures = 3;

}  // namespace

store::UsageEventRecord ToRecord(UsageEvent event) {
  store::UsageEventRecord record;
  record.id = NewUuidV7();
  record.user_id = std::move(event.user_id);
  record.api_key_id = std::move(event.api_key_id);
  record.model = std::move(event.model);
  record.provider = std::move(event.provider);
  record.prompt_tokens = std::max<std::int64_t>(0, event.usage.prompt_tokens);
  record.completion_tokens = std::max<std::int64_t>(0, event.usage.completion_tokens);
  record.cached_tokens = std::max<std::int64_t>(0, event.usage.cached_tokens);
  record.cost = std::max(0.0, event.cost);
  record.latency_ms = std::max<std::int64_t>(0, event.latency_ms);
  record.ttft_ms = event.ttft_ms;
  record.status = std::string(UsageStatusName(event.status));
  const SystemTime created =
      event.created_at.time_since_epoch().count() == 0 ? std::chrono::system_clock::now() : event.created_at;
  record.created_at = FormatRfc3339(created);
  return record;
}

UsageRecorder::UsageRecorder(UsageRecorderConfig config, store::UsageRepository& repository, metrics::Registry& metrics)
    : config_(config),
      repository_(repository),
      recorded_(metrics.AddCounter("usage_events_recorded_total", "Gateway usage events stored in the database.")
                    .WithLabels({})),
      dropped_(metrics
                   .AddCounter("usage_events_dropped_total",
                               "Gateway usage events lost: the buffer was full, the database refused them, or "
                               "shutdown came before they could be stored.")
                   .WithLabels({})),
      depth_(metrics.AddGauge("usage_events_queue_depth", "Gateway usage events held in memory, not yet stored.")
                 .WithLabels({})) {
  if (config_.batch_size == 0 || config_.buffer_size == 0) {
    throw std::invalid_argument("usage recorder: batch_size and buffer_size must be positive");
  }
}

UsageRecorder::~UsageRecorder() { Stop(); }

void UsageRecorder::Start() {
  {
    std::lock_guard lock(mutex_);
    if (started_ || stopping_) return;
    started_ = true;
  }
  asio::co_spawn(io_, Run(), [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log::Error("usage recorder stopped by an exception", {{"error", e.what()}});
    }
  });
  thread_ = std::thread([this] {
    NameThisThread("chatd-usage");
    io_.run();
  });
}

void UsageRecorder::Record(UsageEvent event) {
  store::UsageEventRecord record = ToRecord(std::move(event));
  bool kept = false;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queue_.size() + writing_ < config_.buffer_size) {
      queue_.push_back(std::move(record));
      kept = true;
      depth_.Set(static_cast<double>(queue_.size() + writing_));
      if (queue_.size() >= config_.batch_size && started_ && !wake_posted_) wake = wake_posted_ = true;
    }
  }
  if (wake) {
    // A full batch need not wait for the interval (but does wait out a backoff).
    asio::post(io_, [this] {
      if (!backing_off_) timer_.cancel();
    });
  }
  if (kept) return;
  dropped_.Inc();
  if (!warned_full_.exchange(true)) {
    log::Warn("usage event dropped: the usage buffer is full or the recorder has stopped",
              {{"buffer_size", config_.buffer_size}});
  }
}

void UsageRecorder::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = std::chrono::steady_clock::now() + config_.shutdown_timeout;
    if (!started_) {
      const std::size_t left = queue_.size();
      queue_.clear();
      depth_.Set(0);
      if (left > 0) {
        dropped_.Inc(left);
        log::Error("usage events dropped: the recorder never started", {{"events", left}});
      }
      return;
    }
  }
  asio::post(io_, [this] { timer_.cancel(); });
  if (thread_.joinable()) thread_.join();
}

std::size_t UsageRecorder::Buffered() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + writing_;
}

Task<void> UsageRecorder::Wait(std::chrono::milliseconds duration) {
  boost::system::error_code ec;  // operation_aborted when woken early
  timer_.expires_after(duration);
  co_await timer_.async_wait(asio::redirect_error(kUseAwaitable, ec));
}

std::vector<store::UsageEventRecord> UsageRecorder::TakeBatch() {
  std::lock_guard lock(mutex_);
  wake_posted_ = false;
  const std::size_t count = std::min(queue_.size(), config_.batch_size);
  std::vector<store::UsageEventRecord> batch(
      std::make_move_iterator(queue_.begin()),
      std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(count)));
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(count));
  writing_ = count;
  return batch;
}

void UsageRecorder::Requeue(std::vector<store::UsageEventRecord>& batch) {
  std::lock_guard lock(mutex_);
  queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
  writing_ = 0;
  batch.clear();
}

void UsageRecorder::Written(std::size_t count) {
  {
    std::lock_guard lock(mutex_);
    writing_ = 0;
    depth_.Set(static_cast<double>(queue_.size()));
    if (queue_.size() < config_.buffer_size / 2) warned_full_.store(false);
  }
  recorded_.Inc(count);  // after the buffer says so: whoever sees the count sees the buffer
}

void UsageRecorder::Drop(std::size_t count, std::string_view why) {
  {
    std::lock_guard lock(mutex_);
    writing_ = 0;
    depth_.Set(static_cast<double>(queue_.size()));
  }
  if (count == 0) return;
  dropped_.Inc(count);
  log::Error("usage events dropped", {{"events", count}, {"reason", why}});
}

Task<void> UsageRecorder::Run() {
  std::chrono::milliseconds backoff{0};
  int hard_failures = 0;
  bool outage_logged = false;
  for (;;) {
    bool stopping = false;
    bool batch_ready = false;
    std::chrono::steady_clock::time_point deadline;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
      deadline = stop_deadline_;
      batch_ready = queue_.size() >= config_.batch_size;
    }
    if (backoff.count() > 0) {
      // After a failure: wait before the next try, also while stopping (within the
      // shutdown deadline), so a down database is not hammered.
      backing_off_ = true;
      const auto wait = stopping ? std::min(backoff, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                         std::max(deadline - std::chrono::steady_clock::now(),
                                                                  std::chrono::steady_clock::duration::zero())))
                                 : backoff;
      co_await Wait(wait);
      backing_off_ = false;
    } else if (!stopping && !batch_ready) {
      co_await Wait(config_.flush_interval);
    }
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
      deadline = stop_deadline_;
    }
    if (stopping && std::chrono::steady_clock::now() >= deadline) {
      std::size_t left = 0;
      {
        std::lock_guard lock(mutex_);
        left = queue_.size();
        queue_.clear();
      }
      Drop(left, "shutdown_timeout passed before they could be stored");
      co_return;
    }

    std::vector<store::UsageEventRecord> batch = TakeBatch();
    if (batch.empty()) {
      if (stopping) co_return;
      continue;
    }
    const std::span<const store::UsageEventRecord> rows(batch);
    auto written = co_await repository_.Insert(rows);
    if (written) {
      Written(batch.size());
      if (outage_logged) log::Info("usage events are stored again", {{"events", batch.size()}});
      backoff = std::chrono::milliseconds(0);
      hard_failures = 0;
      outage_logged = false;
      continue;
    }
    const Error& error = written.error();
    if (error.code != ErrorCode::kUnavailable && ++hard_failures >= kMaxHardFailures) {
      Drop(batch.size(), error.message);
      hard_failures = 0;
      backoff = std::chrono::milliseconds(0);
      continue;
    }
    if (!outage_logged) {
      log::Warn("cannot store usage events; keeping them and retrying",
                {{"events", batch.size()}, {"error", error.message}});
      outage_logged = true;
    }
    Requeue(batch);
    backoff = backoff.count() == 0 ? config_.retry_backoff : std::min(backoff * 2, config_.max_retry_backoff);
  }
}

}  // namespace chatd::gateway
