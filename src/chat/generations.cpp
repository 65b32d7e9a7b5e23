#include "chat/generations.hpp"

namespace chatd::chat {

void Generations::Add(const std::string& message_id, std::string user_id, std::string credential_id,
                      asio::any_io_executor executor, std::function<void()> cancel) {
  std::lock_guard lock(mutex_);
  entries_[message_id] = Entry{std::move(user_id), std::move(credential_id), std::move(executor), std::move(cancel)};
}

void Generations::Remove(const std::string& message_id) {
  std::lock_guard lock(mutex_);
  entries_.erase(message_id);
}

bool Generations::Cancel(std::string_view user_id, std::string_view message_id) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(std::string(message_id));
  if (it == entries_.end() || it->second.user_id != user_id) return false;
  asio::post(it->second.executor, it->second.cancel);
  return true;
}

std::size_t Generations::CancelAll(std::string_view user_id, std::string_view credential_id) {
  std::lock_guard lock(mutex_);
  std::size_t cancelled = 0;
  for (auto& [id, entry] : entries_) {
    if (entry.user_id != user_id) continue;
    if (!credential_id.empty() && entry.credential_id != credential_id) continue;
    asio::post(entry.executor, entry.cancel);
    ++cancelled;
  }
  return cancelled;
}

}  // namespace chatd::chat
