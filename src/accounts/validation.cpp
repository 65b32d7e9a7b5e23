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

}  // namespace

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

}  // namespace chatd::accounts
