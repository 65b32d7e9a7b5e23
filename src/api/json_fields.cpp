#include "api/json_fields.hpp"

#include <fmt/format.h>

namespace chatd::api {

namespace {
Unexpected WrongType(std::string_view key, std::string_view expected) {
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} must be {}", key, expected), std::string(key));
}
}  // namespace

Expected<JsonObject> JsonObject::From(simdjson::dom::element element) {
  simdjson::dom::object object;
  if (element.get(object) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
  }
  return JsonObject(object);
}

Expected<std::optional<std::string_view>> JsonObject::OptionalString(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<std::string_view>{};
  std::string_view text;
  if (value.get(text) != simdjson::SUCCESS) return WrongType(key, "a string");
  return std::optional<std::string_view>(text);
}

Expected<std::string_view> JsonObject::RequiredString(std::string_view key) const {
  auto value = OptionalString(key);
  if (!value) return Unexpected{std::move(value).error()};
  if (!*value) return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} is required", key), std::string(key));
  return **value;
}

Expected<std::optional<bool>> JsonObject::OptionalBool(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<bool>{};
  bool flag = false;
  if (value.get(flag) != simdjson::SUCCESS) return WrongType(key, "true or false");
  return std::optional<bool>(flag);
}

Expected<std::optional<std::vector<std::string>>> JsonObject::OptionalStringArray(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) {
    return std::optional<std::vector<std::string>>{};
  }
  simdjson::dom::array array;
  if (value.get(array) != simdjson::SUCCESS) return WrongType(key, "an array of strings");
  std::vector<std::string> items;
  for (simdjson::dom::element item : array) {
    std::string_view text;
    if (item.get(text) != simdjson::SUCCESS) return WrongType(key, "an array of strings");
    items.emplace_back(text);
  }
  return std::optional<std::vector<std::string>>(std::move(items));
}

std::optional<simdjson::dom::element> JsonObject::OptionalValue(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::nullopt;
  return value;
}

bool JsonObject::IsNull(std::string_view key) const {
  simdjson::dom::element value;
  return object_.at_key(key).get(value) == simdjson::SUCCESS && value.is_null();
}

}  // namespace chatd::api
