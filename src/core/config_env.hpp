// Reading configuration values: from the process environment, an optional .env file and
// command-line overrides, with typed parsers that name the variable, what was wrong with
// its value and the accepted form. Module config structs live beside their modules; the
// composition root (app/) fills them through a ConfigReader.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace chatd {

class EnvSource {
 public:
  /// The process environment plus the KEY=VALUE lines of `dotenv_path` when that file
  /// exists (the process environment wins, as with docker and python-dotenv).
  static Expected<EnvSource> Load(const std::string& dotenv_path);
  /// Only the given values; for tests.
  static EnvSource FromMap(std::map<std::string, std::string> values);

  /// Overrides a value (command-line flags win over everything).
  void Set(const std::string& key, std::string value) { values_[key] = std::move(value); }
  std::optional<std::string> Get(std::string_view key) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
  std::map<std::string, std::string, std::less<>> dotenv_;
};

/// Typed getters that remember the first invalid value; check error() after reading all.
class ConfigReader {
 public:
  explicit ConfigReader(const EnvSource& env) : env_(env) {}

  std::string String(std::string_view key, std::string fallback);
  std::int64_t Integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max);
  double Number(std::string_view key, double fallback, double min, double max);
  bool Bool(std::string_view key, bool fallback);
  std::chrono::milliseconds Duration(std::string_view key, std::chrono::milliseconds fallback);
  std::uint64_t Bytes(std::string_view key, std::uint64_t fallback);
  std::string OneOf(std::string_view key, std::string fallback, std::initializer_list<std::string_view> choices);
  /// Comma-separated list; empty entries dropped, entries trimmed.
  std::vector<std::string> List(std::string_view key);

  /// Records an invalid value found by the caller's own validation.
  void Fail(std::string_view key, std::string_view value, std::string_view problem, std::string_view accepted);
  /// One line: "PORT='abc' is not a whole number; expected an integer from 0 to 65535".
  const std::optional<std::string>& error() const { return error_; }

 private:
  const EnvSource& env_;
  std::optional<std::string> error_;
};

/// Parses "250ms", "10s", "5m", "1h" or a bare number of seconds.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);
/// Parses "1048576", "512KB", "1MB", "2GiB" (K/M/G are powers of 1024, as nginx reads them).
std::optional<std::uint64_t> ParseByteSize(std::string_view text);

}  // namespace chatd
