#include "api/json_fields.hpp"

#include <fmt/format.h>

namespace chatd::api {

Expected<JsonObject> JsonObject::From(simdjson::dom::element element, std::string path) {
  simdjson::dom::object object;
  if (element.get(object) != simdjson::SUCCESS) {
    if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} must be an object", path), path);
  }
  return JsonObject(object, std::move(path));
}

std::string JsonObject::Param(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

Unexpected JsonObject::WrongType(std::string_view key, std::string_view expected) const {
  const std::string param = Param(key);
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} must be {}", param, expected), param);
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
  if (!*value) return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} is required", Param(key)), Param(key));
  return **value;
}

Expected<std::optional<bool>> JsonObject::OptionalBool(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<bool>{};
  bool flag = false;
  if (value.get(flag) != simdjson::SUCCESS) return WrongType(key, "true or false");
  return std::optional<bool>(flag);
}

Expected<std::optional<std::int64_t>> JsonObject::OptionalInt(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<std::int64_t>{};
  std::int64_t number = 0;
  if (!value.is_int64() || value.get(number) != simdjson::SUCCESS) return WrongType(key, "an integer");
  return std::optional<std::int64_t>(number);
}

Expected<std::optional<double>> JsonObject::OptionalNumber(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<double>{};
  double number = 0;  // integers convert
  if (!value.is_number() || value.get(number) != simdjson::SUCCESS) return WrongType(key, "a number");
  return std::optional<double>(number);
}

Expected<std::optional<JsonObject>> JsonObject::OptionalObject(std::string_view key) const {
  simdjson::dom::element value;
  if (object_.at_key(key).get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<JsonObject>{};
  auto object = From(value, Param(key));
  if (!object) return Unexpected{std::move(object).error()};
  return std::optional<JsonObject>(std::move(*object));
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
