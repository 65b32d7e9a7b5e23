#include "core/config_env.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

extern char** environ;

namespace chatd {

namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

Expected<EnvSource> EnvSource::Load(const std::string& dotenv_path) {
  EnvSource source;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view line(*entry);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    source.values_.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
  }
  std::ifstream file(dotenv_path);
  if (!file) return source;
  std::string raw;
  int line_number = 0;
  while (std::getline(file, raw)) {
    ++line_number;
    std::string_view line = Trim(raw);
    if (line.empty() || line.front() == '#') continue;
    if (line.substr(0, 7) == "export ") line = Trim(line.substr(7));
    const auto eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{} line {}: expected KEY=VALUE", dotenv_path, line_number));
    }
    std::string key(Trim(line.substr(0, eq)));
    std::string_view value = Trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    } else if (const auto hash = value.find(" #"); hash != std::string_view::npos) {
      value = Trim(value.substr(0, hash));
    }
    source.dotenv_.emplace(std::move(key), std::string(value));
  }
  return source;
}

EnvSource EnvSource::FromMap(std::map<std::string, std::string> values) {
  EnvSource source;
  for (auto& [key, value] : values) source.values_.emplace(key, std::move(value));
  return source;
}

std::optional<std::string> EnvSource::Get(std::string_view key) const {
  if (auto it = values_.find(key); it != values_.end()) return it->second;
  if (auto it = dotenv_.find(key); it != dotenv_.end()) return it->second;
  return std::nullopt;
}

void ConfigReader::Fail(std::string_view key, std::string_view value, std::string_view problem,
                        std::string_view accepted) {
  if (error_) return;
  error_ = fmt::format("{}='{}' {}; expected {}", key, value, problem, accepted);
}

std::string ConfigReader::String(std::string_view key, std::string fallback) {
  auto value = env_.Get(key);
  return value ? *value : std::move(fallback);
}

std::int64_t ConfigReader::Integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max) {
  auto value = env_.Get(key);
  if (!value) return fallback;
  const std::string_view text = Trim(*value);
  std::int64_t parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  const std::string accepted = fmt::format("an integer from {} to {}", min, max);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    Fail(key, *value, "is not a whole number", accepted);
    return fallback;
  }
  if (parsed < min || parsed > max) {
    Fail(key, *value, "is out of range", accepted);
    return fallback;
  }
  return parsed;
}

double ConfigReader::Number(std::string_view key, double fallback, double min, double max) {
  auto value = env_.Get(key);
  if (!value) return fallback;
  const std::string_view text = Trim(*value);
  double parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  const std::string accepted = fmt::format("a number from {} to {}", min, max);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    Fail(key, *value, "is not a number", accepted);
    return fallback;
  }
  if (parsed < min || parsed > max) {
    Fail(key, *value, "is out of range", accepted);
    return fallback;
  }
  return parsed;
}

bool ConfigReader::Bool(std::string_view key, bool fallback) {
  auto value = env_.Get(key);
  if (!value) return fallback;
  const std::string text = Lower(Trim(*value));
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  Fail(key, *value, "is not a boolean", "true or false");
  return fallback;
}

std::chrono::milliseconds ConfigReader::Duration(std::string_view key, std::chrono::milliseconds fallback) {
  auto value = env_.Get(key);
  if (!value) return fallback;
  if (auto parsed = ParseDuration(*value)) return *parsed;
  Fail(key, *value, "is not a duration", "a number of seconds or a value like 500ms, 10s, 5m, 1h");
  return fallback;
}

std::uint64_t ConfigReader::Bytes(std::string_view key, std::uint64_t fallback) {
  auto value = env_.Get(key);
  if (!value) return fallback;
  if (auto parsed = ParseByteSize(*value)) return *parsed;
  Fail(key, *value, "is not a size", "a number of bytes or a value like 512KB, 1MB, 2GB");
  return fallback;
}

std::string ConfigReader::OneOf(std::string_view key, std::string fallback,
                                std::initializer_list<std::string_view> choices) {
  auto value = env_.Get(key);
  if (!value) return fallback;
  const std::string text = Lower(Trim(*value));
  for (std::string_view choice : choices) {
    if (text == choice) return text;
  }
  std::string accepted = "one of ";
  for (std::string_view choice : choices) {
    if (accepted.size() > 7) accepted += ", ";
    accepted += choice;
  }
  Fail(key, *value, "is not allowed", accepted);
  return fallback;
}

std::vector<std::string> ConfigReader::List(std::string_view key) {
  std::vector<std::string> items;
  auto value = env_.Get(key);
  if (!value) return items;
  std::string_view rest = *value;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = Trim(rest.substr(0, comma));
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return items;
}

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  text = Trim(text);
  double number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || number < 0 || end == text.data()) return std::nullopt;
  const std::string unit = Lower(Trim(std::string_view(end, text.data() + text.size() - end)));
  double ms = 0;
  if (unit.empty() || unit == "s") ms = number * 1000;
  else if (unit == "ms") ms = number;
  else if (unit == "m") ms = number * 60'000;
  else if (unit == "h") ms = number * 3'600'000;
  else return std::nullopt;
  if (ms > 1e12) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::optional<std::uint64_t> ParseByteSize(std::string_view text) {
  text = Trim(text);
  std::uint64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  std::string unit = Lower(Trim(std::string_view(end, text.data() + text.size() - end)));
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  if (unit.size() == 2 && unit.back() == 'i') unit.pop_back();  // KiB, MiB, GiB
  std::uint64_t multiplier = 1;
  if (unit.empty()) multiplier = 1;
  else if (unit == "k") multiplier = 1ull << 10;
  else if (unit == "m") multiplier = 1ull << 20;
  else if (unit == "g") multiplier = 1ull << 30;
  else return std::nullopt;
  if (number > (1ull << 50) / multiplier) return std::nullopt;
  return number * multiplier;
}

}  // namespace chatd
