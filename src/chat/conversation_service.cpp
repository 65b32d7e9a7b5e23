#include "chat/conversation_service.hpp"

#include <cmath>
#include <utility>

#include <fmt/format.h>
#include <simdjson.h>

#include "core/utf8.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"

namespace chatd::chat {

namespace {

Unexpected NotFound() { return MakeError(ErrorCode::kNotFound, "conversation not found"); }

Unexpected Invalid(std::string message, std::string param) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(param));
}

Expected<void> CheckLength(std::string_view text, std::string_view param, std::size_t max) {
  if (Utf8Length(text) > max)
    return Invalid(fmt::format("{} must be at most {} characters", param, max), std::string(param));
  return {};
}

Expected<void> CheckTitle(std::string_view title) { return CheckLength(title, "title", kMaxTitleLength); }
Expected<void> CheckModel(std::string_view model) { return CheckLength(model, "model", kMaxModelLength); }

Expected<void> CheckSystemPrompt(std::string_view prompt) {
  if (prompt.size() > kMaxSystemPromptBytes) {
    return Invalid(fmt::format("system_prompt must be at most {} bytes", kMaxSystemPromptBytes), "system_prompt");
  }
  return {};
}

// A number in [low, high] (NaN cannot come out of JSON).
Expected<void> CheckNumber(simdjson::dom::element value, std::string_view key, double low, double high) {
  const std::string param = fmt::format("params.{}", key);
  double number = 0;
  if (!value.is_number() || value.get(number) != simdjson::SUCCESS || number < low || number > high) {
    return Invalid(fmt::format("{} must be a number from {} to {}", param, low, high), param);
  }
  return {};
}

Expected<void> CheckInteger(simdjson::dom::element value, std::string_view key, std::int64_t low, std::int64_t high) {
  const std::string param = fmt::format("params.{}", key);
  std::int64_t number = 0;
  if (!value.is_int64() || value.get(number) != simdjson::SUCCESS || number < low || number > high) {
    return Invalid(fmt::format("{} must be an integer from {} to {}", param, low, high), param);
  }
  return {};
}

}  // namespace

Expected<void> CheckGenerationParams(std::string_view json) {
  if (json.size() > kMaxParamsBytes) return Invalid("params is too large", "params");
  simdjson::dom::parser parser;
  auto parsed = ParseJson(parser, json);
  if (!parsed) return Invalid("params must be a JSON object", "params");
  simdjson::dom::object object;
  if (parsed->get(object) != simdjson::SUCCESS) return Invalid("params must be a JSON object", "params");
  // Every field, duplicates included: {"top_p": 0.5, "top_p": 7} is refused.
  for (const auto field : object) {
    Expected<void> checked;
    if (field.key == "temperature") {
      checked = CheckNumber(field.value, field.key, 0, 2);
    } else if (field.key == "top_p") {
      checked = CheckNumber(field.value, field.key, 0, 1);
    } else if (field.key == "max_tokens") {
      checked = CheckInteger(field.value, field.key, 1, 1'000'000);
    } else {
      const std::string param = fmt::format("params.{}", field.key);
      checked = Invalid(fmt::format("unknown generation parameter {} (allowed: temperature, top_p, max_tokens)", param),
                        param);
    }
    if (!checked) return checked;
  }
  return {};
}

Expected<void> CheckNewConversation(const NewConversation& request) {
  if (auto ok = CheckTitle(request.title); !ok) return ok;
  if (auto ok = CheckModel(request.model); !ok) return ok;
  if (request.system_prompt) {
    if (auto ok = CheckSystemPrompt(*request.system_prompt); !ok) return ok;
  }
  return CheckGenerationParams(request.params);
}

Task<Expected<Conversation>> ConversationService::Create(std::string_view user_id, const NewConversation& request) {
  if (auto ok = CheckNewConversation(request); !ok) co_return Unexpected{std::move(ok).error()};

  Conversation record;
  record.id = NewUuidV7();
  record.user_id = std::string(user_id);
  record.title = request.title;
  record.model = request.model;
  record.system_prompt = request.system_prompt;
  record.params = request.params;
  record.created_at = FormatRfc3339(clock_.Now());
  record.updated_at = record.created_at;
  auto inserted = co_await repo_.Insert(record);
  if (!inserted) co_return Unexpected{std::move(inserted).error()};
  co_return record;
}

Task<Expected<Conversation>> ConversationService::Get(std::string_view user_id, std::string_view id) {
  if (!LooksLikeUuid(id)) co_return NotFound();
  auto found = co_await repo_.Find(user_id, id);
  if (!found) co_return Unexpected{std::move(found).error()};
  if (!found->has_value()) co_return NotFound();
  co_return std::move(**found);
}

Task<Expected<Page<Conversation>>> ConversationService::List(std::string_view user_id, const ConversationFilter& filter,
                                                             const PageRequest& page) {
  if (Utf8Length(filter.title_contains) > kMaxTitleLength) {
    co_return Invalid(fmt::format("q must be at most {} characters", kMaxTitleLength), "q");
  }
  co_return co_await repo_.List(user_id, filter, page);
}

Task<Expected<Conversation>> ConversationService::Update(std::string_view user_id, std::string_view id,
                                                         const ConversationChange& change) {
  // Validation first, so a bad field is 400 whoever owns the id.
  if (change.title) {
    if (auto ok = CheckTitle(*change.title); !ok) co_return Unexpected{std::move(ok).error()};
  }
  if (change.model) {
    if (auto ok = CheckModel(*change.model); !ok) co_return Unexpected{std::move(ok).error()};
  }
  if (change.system_prompt && *change.system_prompt) {
    if (auto ok = CheckSystemPrompt(**change.system_prompt); !ok) co_return Unexpected{std::move(ok).error()};
  }
  if (change.params) {
    if (auto ok = CheckGenerationParams(*change.params); !ok) co_return Unexpected{std::move(ok).error()};
  }
  if (!LooksLikeUuid(id)) co_return NotFound();
  const std::string now = FormatRfc3339(clock_.Now());
  auto updated = co_await repo_.Update(user_id, id, change, now);
  if (!updated) co_return Unexpected{std::move(updated).error()};
  if (!updated->has_value()) co_return NotFound();
  co_return std::move(**updated);
}

Task<Expected<bool>> ConversationService::SetTitleIfUntitled(std::string_view user_id, std::string_view id,
                                                             std::string_view title) {
  if (!LooksLikeUuid(id)) co_return NotFound();
  // Cut at a code point boundary: a title is at most kMaxTitleLength characters.
  std::size_t characters = 0;
  std::size_t end = 0;
  for (; end < title.size(); ++end) {
    if ((static_cast<unsigned char>(title[end]) & 0xc0) != 0x80 && ++characters > kMaxTitleLength) break;
  }
  co_return co_await repo_.SetTitleIfUntitled(user_id, id, title.substr(0, end));
}

Task<Expected<void>> ConversationService::Delete(std::string_view user_id, std::string_view id) {
  if (!LooksLikeUuid(id)) co_return NotFound();
  auto deleted = co_await repo_.Delete(user_id, id);
  if (!deleted) co_return Unexpected{std::move(deleted).error()};
  if (!*deleted) co_return NotFound();
  co_return Expected<void>{};
}

}  // namespace chatd::chat
