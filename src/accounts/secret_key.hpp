#pragma once

#include <string>

namespace chatd::accounts {

/// A new random signing key for SECRET_KEY: 48 bytes from libsodium's CSPRNG, base64.
std::string GenerateSecretKey();

}  // namespace chatd::accounts
