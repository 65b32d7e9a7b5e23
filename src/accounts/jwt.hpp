// Access tokens: JWTs signed with HS256 (HMAC-SHA256, SECRET_KEY).
//
// Verification is strict and ordered so that nothing an attacker wrote is interpreted
// before it is authenticated: the header must be byte-for-byte the one we issue
// ({"alg":"HS256","typ":"JWT"}, which rules out "none", RS256/ES256 key confusion and
// any header trickery), then the signature is compared in constant time, and only then
// is the payload parsed. Claims: sub, role, typ ("access"), ver (the user's
// token_version), jti, iat, nbf, exp; all required.
//
// Thread-safe (a thread-local parser); about a microsecond per verification.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/expected.hpp"
#include "core/time.hpp"

namespace chatd::accounts {

struct AccessClaims {
  std::string sub;   // user id
  std::string role;  // "user" | "admin"
  std::string typ = "access";
  std::string jti;       // a UUIDv7, unique per token
  std::int64_t ver = 0;  // token_version when issued
  std::int64_t iat = 0;  // seconds since the epoch
  std::int64_t nbf = 0;
  std::int64_t exp = 0;
};

/// Clock skew tolerated on exp and nbf.
inline constexpr std::chrono::seconds kJwtLeeway{10};

class JwtCodec {
 public:
  /// `key`: the HMAC key (SECRET_KEY), any length (>= 32 bytes is the config's rule).
  explicit JwtCodec(std::string key) : key_(std::move(key)) {}

  /// header.payload.signature, base64url without padding.
  std::string Sign(const AccessClaims& claims) const;

  /// The claims of a well-formed, correctly signed, current access token; otherwise
  /// kUnauthenticated with a short reason (safe to show: it names no secret).
  Expected<AccessClaims> Verify(std::string_view token, SystemTime now) const;

 private:
  std::string key_;
};

}  // namespace chatd::accounts
