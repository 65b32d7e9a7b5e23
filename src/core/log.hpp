// Structured logging on spdlog. Every line is one event: a message plus key/value fields,
// written as one JSON object (LOG_FORMAT=json) or as `ts level msg key=value ...` text.
// The logger is asynchronous with a bounded queue that drops the oldest line when full,
// so a slow log sink can never stall an I/O thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include <spdlog/common.h>

namespace chatd::log {

struct LogConfig {
  std::string level = "info";   // trace|debug|info|warn|error|critical|off
  std::string format = "text";  // text|json
  std::string file;             // empty: stderr; else a file rotated at 10 MB, 10 kept
};

/// Installs the process-wide logger. Call once at startup, before any thread starts.
void Init(const LogConfig& config);
/// Flushes and stops the background log thread. Call once at exit.
void Shutdown();

class Field {
 public:
  enum class Kind { kString, kInt, kDouble, kBool };

  Field(std::string_view key, std::string_view value) : key_(key), kind_(Kind::kString), str_(value) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
  Field(std::string_view key, T value) : key_(key), kind_(Kind::kInt), int_(static_cast<std::int64_t>(value)) {}
  Field(std::string_view key, double value) : key_(key), kind_(Kind::kDouble), double_(value) {}
  Field(std::string_view key, bool value) : key_(key), kind_(Kind::kBool), bool_(value) {}

  std::string_view key() const { return key_; }
  Kind kind() const { return kind_; }
  std::string_view str() const { return str_; }
  std::int64_t integer() const { return int_; }
  double real() const { return double_; }
  bool boolean() const { return bool_; }

 private:
  std::string_view key_;
  Kind kind_;
  std::string_view str_;
  std::int64_t int_ = 0;
  double double_ = 0;
  bool bool_ = false;
};

using Fields = std::initializer_list<Field>;

bool Enabled(spdlog::level::level_enum level);
void Write(spdlog::level::level_enum level, std::string_view message, Fields fields = {});

inline void Debug(std::string_view message, Fields fields = {}) { Write(spdlog::level::debug, message, fields); }
inline void Info(std::string_view message, Fields fields = {}) { Write(spdlog::level::info, message, fields); }
inline void Warn(std::string_view message, Fields fields = {}) { Write(spdlog::level::warn, message, fields); }
inline void Error(std::string_view message, Fields fields = {}) { Write(spdlog::level::err, message, fields); }

}  // namespace chatd::log
