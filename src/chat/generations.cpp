#include "chat/generations.hpp"

#include <algorithm>
#include <vector>

namespace chatd::chat {

void Generations::Add(std::shared_ptr<Generation> generation) {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  // At most once a second: a sweep walks every entry.
  if (now - last_sweep_ >= std::chrono::seconds(1)) SweepLocked(now);
  std::string id = generation->info().message_id;
  entries_[std::move(id)] = std::move(generation);
}

void Generations::SweepLocked(std::chrono::steady_clock::time_point now) {
  last_sweep_ = now;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> finished;
  std::erase_if(entries_, [&](const auto& entry) {
    const Generation& generation = *entry.second;
    if (!generation.ended()) return false;
    if (now - generation.ended_at() > keep_finished_) return true;
    finished.emplace_back(generation.ended_at(), entry.first);
    return false;
  });
  if (finished.size() <= max_finished_) return;
  // Over the cap: the oldest finished ones go, as if their window had passed.
  const auto surplus = static_cast<std::ptrdiff_t>(finished.size() - max_finished_);
  std::nth_element(finished.begin(), finished.begin() + surplus, finished.end());
  for (auto it = finished.begin(); it != finished.begin() + surplus; ++it) entries_.erase(it->second);
}

std::shared_ptr<Generation> Generations::Find(std::string_view user_id, std::string_view message_id) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(std::string(message_id));
  if (it == entries_.end() || it->second->info().user_id != user_id) return nullptr;
  const Generation& generation = *it->second;
  if (generation.ended() && std::chrono::steady_clock::now() - generation.ended_at() > keep_finished_) return nullptr;
  return it->second;
}

bool Generations::Cancel(std::string_view user_id, std::string_view message_id) {
  std::shared_ptr<Generation> generation = Find(user_id, message_id);
  if (!generation || generation->ended()) return false;
  generation->Cancel();
  return true;
}

std::size_t Generations::CancelAll(std::string_view user_id, std::string_view credential_id) {
  std::lock_guard lock(mutex_);
  std::size_t cancelled = 0;
  for (auto& [id, generation] : entries_) {
    const GenerationInfo& info = generation->info();
    if (info.user_id != user_id || generation->ended()) continue;
    if (!credential_id.empty() && info.credential_id != credential_id) continue;
    generation->Cancel();
    ++cancelled;
  }
  return cancelled;
}

std::size_t Generations::live() const {
  std::lock_guard lock(mutex_);
  std::size_t count = 0;
  for (const auto& [id, generation] : entries_) count += generation->ended() ? 0 : 1;
  return count;
}

}  // namespace chatd::chat
