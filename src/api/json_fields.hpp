// Reading fields of a JSON request object with errors that name the field: the body must
// be an object, a present field must have the right type, a required one must be there.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "core/expected.hpp"

namespace chatd::api {

class JsonObject {
 public:
  /// kInvalidArgument unless `element` is an object.
  static Expected<JsonObject> From(simdjson::dom::element element);

  /// Absent or null → nullopt; another type → kInvalidArgument naming the field.
  Expected<std::optional<std::string_view>> OptionalString(std::string_view key) const;
  Expected<std::string_view> RequiredString(std::string_view key) const;
  Expected<std::optional<bool>> OptionalBool(std::string_view key) const;
  Expected<std::optional<std::vector<std::string>>> OptionalStringArray(std::string_view key) const;
  /// Any JSON value (absent or null → nullopt), for fields whose shape the service checks.
  std::optional<simdjson::dom::element> OptionalValue(std::string_view key) const;
  /// Present with the value null (to tell "clear it" from "leave it" in a PATCH).
  bool IsNull(std::string_view key) const;

 private:
  explicit JsonObject(simdjson::dom::object object) : object_(object) {}
  simdjson::dom::object object_;
};

}  // namespace chatd::api
