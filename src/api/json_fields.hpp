// Reading fields of a JSON request object with errors that name the field: the body must
// be an object, a present field must have the right type, a required one must be there.
// A nested object knows its path, so its errors name the whole of it ("messages[2].role").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "core/expected.hpp"

namespace chatd::api {

class JsonObject {
 public:
  /// kInvalidArgument unless `element` is an object. `path` names it in errors (empty:
  /// the request body itself) and prefixes the names of its fields.
  static Expected<JsonObject> From(simdjson::dom::element element, std::string path = {});

  /// Absent or null → nullopt; another type → kInvalidArgument naming the field.
  Expected<std::optional<std::string_view>> OptionalString(std::string_view key) const;
  Expected<std::string_view> RequiredString(std::string_view key) const;
  Expected<std::optional<bool>> OptionalBool(std::string_view key) const;
  Expected<std::optional<std::int64_t>> OptionalInt(std::string_view key) const;
  /// Any JSON number, integer or not.
  Expected<std::optional<double>> OptionalNumber(std::string_view key) const;
  /// A nested object (absent or null → nullopt), whose errors name `<path>.<key>.<field>`.
  Expected<std::optional<JsonObject>> OptionalObject(std::string_view key) const;
  Expected<std::optional<std::vector<std::string>>> OptionalStringArray(std::string_view key) const;
  /// Any JSON value (absent or null → nullopt), for fields whose shape the service checks.
  std::optional<simdjson::dom::element> OptionalValue(std::string_view key) const;
  /// Present with the value null (to tell "clear it" from "leave it" in a PATCH).
  bool IsNull(std::string_view key) const;

  /// How errors name the field `key` of this object.
  std::string Param(std::string_view key) const;

 private:
  JsonObject(simdjson::dom::object object, std::string path) : object_(object), path_(std::move(path)) {}
  Unexpected WrongType(std::string_view key, std::string_view expected) const;

  simdjson::dom::object object_;
  std::string path_;
};

}  // namespace chatd::api
