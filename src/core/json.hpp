// JSON in and out. Parsing is simdjson's DOM (fast, validated); when a body does not
// parse, DescribeJsonError() walks it once more to say where it broke, which costs
// nothing on the happy path. Writing is a small streaming builder: no tree, no
// allocations beyond the output string.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "core/expected.hpp"

namespace chatd {

/// Parses `text` with `parser` (reuse one per thread or request). On failure the error is
/// kInvalidArgument with a message naming the line and column where the JSON broke.
Expected<simdjson::dom::element> ParseJson(simdjson::dom::parser& parser, std::string_view text);

/// "invalid JSON at line L, column C: <reason>" for text that does not parse.
std::string DescribeJsonError(std::string_view text);

/// Appends `text` to `out` as a JSON string literal body (no quotes), escaping as needed.
void AppendJsonEscaped(std::string& out, std::string_view text);

class JsonWriter {
 public:
  JsonWriter() { out_.reserve(256); }
  /// Writes after what `out` holds, in its buffer: a caller that moves its string in and
  /// str() back out builds frame after frame without allocating.
  explicit JsonWriter(std::string out) : out_(std::move(out)) {}

  JsonWriter& BeginObject() { Separate(); out_.push_back('{'); first_ = true; return *this; }
  JsonWriter& EndObject() { out_.push_back('}'); first_ = false; return *this; }
  JsonWriter& BeginArray() { Separate(); out_.push_back('['); first_ = true; return *this; }
  JsonWriter& EndArray() { out_.push_back(']'); first_ = false; return *this; }
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(std::int64_t value);
  JsonWriter& Uint(std::uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  /// Inserts already-serialised JSON as one value.
  JsonWriter& Raw(std::string_view json);

  // Key + value in one call, for the common case.
  JsonWriter& Field(std::string_view key, std::string_view value) { return Key(key).String(value); }
  JsonWriter& Field(std::string_view key, const char* value) { return Key(key).String(value); }
  JsonWriter& Field(std::string_view key, std::int64_t value) { return Key(key).Int(value); }
  JsonWriter& Field(std::string_view key, int value) { return Key(key).Int(value); }
  JsonWriter& Field(std::string_view key, double value) { return Key(key).Double(value); }
  JsonWriter& Field(std::string_view key, bool value) { return Key(key).Bool(value); }
  /// The value, or null when absent.
  JsonWriter& NullableField(std::string_view key, const std::optional<std::string>& value) {
    Key(key);
    return value ? String(*value) : Null();
  }

  const std::string& str() const& { return out_; }
  std::string str() && { return std::move(out_); }

 private:
  void Separate() {
    if (after_key_) { after_key_ = false; return; }
    if (!first_) out_.push_back(',');
    first_ = false;
  }
  std::string out_;
  bool first_ = true;
  bool after_key_ = false;
};

}  // namespace chatd
