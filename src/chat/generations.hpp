// The generations of this process, live and recently finished, by message id: so that
// their owner can follow them again after a dropped connection (resume) or stop them —
// by an explicit cancel, or because the credential that started them was revoked.
// A finished generation stays for `keep_finished`, long enough for a client to reconnect
// and get the exact events it missed; after that a resume is served from the store.
// (Across instances the same will travel over Redis pub/sub.)
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "chat/generation.hpp"

namespace chatd::chat {

class Generations {
 public:
  /// Finished generations are kept `keep_finished`, and at most `max_finished` of them
  /// (the oldest go first), so a burst of turns cannot hold memory for the whole window.
  explicit Generations(std::chrono::milliseconds keep_finished = std::chrono::minutes(2),
                       std::size_t max_finished = 20'000)
      : keep_finished_(keep_finished), max_finished_(max_finished) {}

  /// Registers a generation under its message id. Thread-safe, like everything here.
  void Add(std::shared_ptr<Generation> generation);

  /// The generation of `message_id` when `user_id` owns it and it is live or recently
  /// finished; null otherwise (someone else's looks exactly like a missing one).
  std::shared_ptr<Generation> Find(std::string_view user_id, std::string_view message_id);

  /// Stops `message_id` if it is being generated for `user_id`; false otherwise (not
  /// running here, already finished, or someone else's).
  bool Cancel(std::string_view user_id, std::string_view message_id);
  /// Stops every live generation of `user_id`, or only those started with
  /// `credential_id` when it is not empty. Returns how many.
  std::size_t CancelAll(std::string_view user_id, std::string_view credential_id = {});

  /// Generations not yet finished.
  std::size_t live() const;

 private:
  void SweepLocked(std::chrono::steady_clock::time_point now);  // drops expired or surplus finished ones

  const std::chrono::milliseconds keep_finished_;
  const std::size_t max_finished_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Generation>> entries_;
  std::chrono::steady_clock::time_point last_sweep_;
};

}  // namespace chatd::chat
