// The answers being generated right now in this process, so that they can be stopped:
// by their owner (POST .../messages/{id}/cancel), by their own client leaving with
// `on_disconnect: cancel`, or because the credential that started them was revoked.
// Each entry cancels on its own I/O thread; the registry only hands the request over.
// (Across instances the same will travel over Redis pub/sub.)
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/asio.hpp"

namespace chatd::chat {

class Generations {
 public:
  /// Registers the generation of `message_id`; `cancel` is run on `executor` (the
  /// generation's own I/O thread) when it is to stop. Thread-safe.
  void Add(const std::string& message_id, std::string user_id, std::string credential_id,
           asio::any_io_executor executor, std::function<void()> cancel);
  void Remove(const std::string& message_id);

  /// Stops `message_id` if it is being generated for `user_id`; false otherwise (not
  /// running here, or someone else's).
  bool Cancel(std::string_view user_id, std::string_view message_id);
  /// Stops every generation of `user_id`, or only those started with `credential_id`
  /// when it is not empty. Returns how many.
  std::size_t CancelAll(std::string_view user_id, std::string_view credential_id = {});

 private:
  struct Entry {
    std::string user_id;
    std::string credential_id;  // the API key id, empty for a session
    asio::any_io_executor executor;
    std::function<void()> cancel;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace chatd::chat
