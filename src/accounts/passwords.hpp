// Passwords: argon2id hashing (libsodium), the policy new passwords must meet, and the
// bundled list of common passwords.
//
// Hash() and Verify() are deliberately slow (tens of milliseconds, 19 MiB each with the
// production parameters): they are blocking calls, to run on the hashing pool via
// Offload(), never on an I/O thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace chatd::accounts {

/// argon2id cost. The defaults are OWASP's minimum (m=19 MiB, t=2, p=1); tests use
/// cheaper values. Verification reads the cost from the stored hash, so hashes made with
/// other parameters keep verifying.
struct PasswordHashParams {
  unsigned long long opslimit = 2;
  std::size_t memlimit = 19u * 1024 * 1024;
};

inline constexpr std::size_t kMinPasswordLength = 8;
inline constexpr std::size_t kMaxPasswordLength = 128;

/// Blocking. The "$argon2id$v=19$m=...,t=...,p=1$salt$hash" string (salt included).
/// Throws std::runtime_error when libsodium cannot allocate the memory.
std::string HashPassword(std::string_view password, const PasswordHashParams& params);
/// Blocking. False for a wrong password or a malformed hash.
bool VerifyPassword(std::string_view password, const std::string& hash);

/// 8..128 characters (UTF-8 code points) and not a common password; kInvalidArgument with
/// `param` otherwise.
Expected<void> CheckPasswordPolicy(std::string_view password, std::string_view param = "password");

/// True when `password`, lower-cased, is on the bundled list of common passwords.
bool IsCommonPassword(std::string_view password);

}  // namespace chatd::accounts
