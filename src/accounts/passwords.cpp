#include "accounts/passwords.hpp"

#include <stdexcept>

#include <sodium.h>

#include "accounts/tokens.hpp"
#include "accounts/validation.hpp"

namespace chatd::accounts {

std::string HashPassword(std::string_view password, const PasswordHashParams& params) {
  InitSodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), params.opslimit, params.memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    throw std::runtime_error("argon2id hashing failed (out of memory)");
  }
  return std::string(out);
}

bool VerifyPassword(std::string_view password, const std::string& hash) {
  InitSodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

Expected<void> CheckPasswordPolicy(std::string_view password, std::string_view param) {
  const std::size_t length = Utf8Length(password);
  if (length < kMinPasswordLength) {
    return MakeError(ErrorCode::kInvalidArgument, "password must be at least 8 characters", std::string(param));
  }
  if (length > kMaxPasswordLength) {
    return MakeError(ErrorCode::kInvalidArgument, "password must be at most 128 characters", std::string(param));
  }
  if (IsCommonPassword(password)) {
    return MakeError(ErrorCode::kInvalidArgument, "this password is too common; choose another", std::string(param));
  }
  return {};
}

}  // namespace chatd::accounts
