#include "accounts/validation.hpp"

#include <chrono>
#include <cstdint>

namespace chatd::accounts {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

Unexpected InvalidEmail(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), "email");
}

// Parses exactly `digits` decimal digits at text[pos..]; -1 when they are not digits.
int Digits(std::string_view text, std::size_t pos, std::size_t digits) {
  if (pos + digits > text.size()) return -1;
  int value = 0;
  for (std::size_t i = pos; i < pos + digits; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

}  // namespace

std::size_t Utf8Length(std::string_view text) {
  std::size_t length = 0;
  for (const char c : text) {
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++length;
  }
  return length;
}

Expected<std::string> NormalizeEmail(std::string_view email) {
  while (!email.empty() && IsSpace(email.front())) email.remove_prefix(1);
  while (!email.empty() && IsSpace(email.back())) email.remove_suffix(1);
  if (email.empty()) return InvalidEmail("email is required");
  if (Utf8Length(email) > kMaxEmailLength) return InvalidEmail("email must be at most 254 characters");
  std::string out;
  out.reserve(email.size());
  std::size_t at = std::string_view::npos;
  for (std::size_t i = 0; i < email.size(); ++i) {
    const char c = email[i];
    if (IsControl(static_cast<unsigned char>(c)) || IsSpace(c)) {
      return InvalidEmail("email must not contain spaces or control characters");
    }
    if (c == '@') {
      if (at != std::string_view::npos) return InvalidEmail("email must contain exactly one '@'");
      at = i;
    }
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  if (at == std::string_view::npos) return InvalidEmail("email must contain exactly one '@'");
  if (at == 0) return InvalidEmail("email is missing the part before '@'");
  const std::string_view domain = std::string_view(out).substr(at + 1);
  const auto dot = domain.find('.');
  if (dot == std::string_view::npos || domain.front() == '.' || domain.back() == '.' ||
      domain.find("..") != std::string_view::npos) {
    return InvalidEmail("email must have a domain like example.com");
  }
  return out;
}

Expected<void> CheckName(std::string_view name, std::string_view param, std::size_t min, std::size_t max) {
  const std::size_t length = Utf8Length(name);
  if (length < min) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(param) + " is required", std::string(param));
  }
  if (length > max) {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string(param) + " must be at most " + std::to_string(max) + " characters",
                     std::string(param));
  }
  for (const char c : name) {
    if (IsControl(static_cast<unsigned char>(c))) {
      return MakeError(ErrorCode::kInvalidArgument, std::string(param) + " must not contain control characters",
                       std::string(param));
    }
  }
  return {};
}

std::optional<SystemTime> ParseRfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') || text[13] != ':' ||
      text[16] != ':') {
    return std::nullopt;
  }
  const int year = Digits(text, 0, 4);
  const int month = Digits(text, 5, 2);
  const int day = Digits(text, 8, 2);
  const int hour = Digits(text, 11, 2);
  const int minute = Digits(text, 14, 2);
  const int second = Digits(text, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 60) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;

  std::size_t pos = 19;
  std::chrono::nanoseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    std::int64_t nanos = 0;
    std::int64_t scale = 100'000'000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      nanos += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
    fraction = std::chrono::nanoseconds(nanos);
  }
  std::chrono::minutes offset{0};
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-') && text[pos + 3] == ':') {
    const int oh = Digits(text, pos + 1, 2);
    const int om = Digits(text, pos + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return std::nullopt;
    offset = std::chrono::minutes(oh * 60 + om);
    if (text[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  const auto local = std::chrono::sys_days(date) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
                     std::chrono::seconds(second);
  return std::chrono::time_point_cast<SystemTime::duration>(local - offset + fraction);
}

}  // namespace chatd::accounts
