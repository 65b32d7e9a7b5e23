// The small crypto building blocks of accounts: base64url, random tokens, SHA-256.
//
// Refresh tokens and API keys are 32 random bytes (libsodium's CSPRNG). Only their SHA-256
// is stored: a database leak gives nothing that authenticates. A plain (unsalted, fast)
// hash is right here because the input is 256 bits of randomness, not a password.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/sha256.hpp"  // Sha256Hex: how tokens and keys are stored

namespace chatd::accounts {

inline constexpr std::string_view kApiKeyPrefix = "sk-chatd-";
/// How many leading characters of a key are kept to recognise it ("sk-chatd-AbC").
inline constexpr std::size_t kApiKeyDisplayLength = 12;

/// Calls sodium_init() once per process (thread-safe); every libsodium user calls it first.
void InitSodium();

/// Base64url (RFC 4648 §5) without padding.
std::string Base64UrlEncode(std::string_view bytes);
/// Accepts unpadded base64url only; nullopt on any other character or an impossible length.
std::optional<std::string> Base64UrlDecode(std::string_view text);

/// `bytes` random bytes from libsodium, base64url-encoded.
std::string RandomToken(std::size_t bytes = 32);

/// A new API key: "sk-chatd-" + 43 base64url characters (32 random bytes).
std::string NewApiKeySecret();
/// True when `credential` has the shape of an API key (prefix; the rest is checked by lookup).
inline bool LooksLikeApiKey(std::string_view credential) { return credential.starts_with(kApiKeyPrefix); }

}  // namespace chatd::accounts
