#include "accounts/jwt.hpp"

#include <array>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include "accounts/tokens.hpp"
#include "core/json.hpp"

namespace chatd::accounts {

namespace {

// base64url of {"alg":"HS256","typ":"JWT"}: the only header accepted.
constexpr std::string_view kHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
constexpr std::size_t kMaxTokenSize = 4096;
constexpr std::size_t kMacSize = 32;

using Mac = std::array<unsigned char, kMacSize>;

Mac Hmac(std::string_view key, std::string_view data) {
  Mac mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac.data(), &length);
  return mac;
}

Unexpected Invalid(std::string message) { return MakeError(ErrorCode::kUnauthenticated, std::move(message)); }

std::int64_t Seconds(SystemTime time) {
  return std::chrono::duration_cast<std::chrono::seconds>(time.time_since_epoch()).count();
}

}  // namespace

std::string JwtCodec::Sign(const AccessClaims& claims) const {
  JsonWriter payload;
  payload.BeginObject()
      .Field("sub", claims.sub)
      .Field("role", claims.role)
      .Field("typ", claims.typ)
      .Field("ver", claims.ver)
      .Field("jti", claims.jti)
      .Field("iat", claims.iat)
      .Field("nbf", claims.nbf)
      .Field("exp", claims.exp)
      .EndObject();
  std::string token(kHeader);
  token += '.';
  token += Base64UrlEncode(payload.str());
  const Mac mac = Hmac(key_, token);
  token += '.';
  token += Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
  return token;
}

Expected<AccessClaims> JwtCodec::Verify(std::string_view token, SystemTime now) const {
  if (token.size() > kMaxTokenSize) return Invalid("malformed access token");
  const auto first_dot = token.find('.');
  const auto last_dot = token.rfind('.');
  if (first_dot == std::string_view::npos || first_dot == last_dot) return Invalid("malformed access token");
  if (token.substr(0, first_dot) != kHeader) return Invalid("unsupported access token header");

  // Signature first, in constant time; the payload is untrusted until it matches.
  const std::string_view signed_part = token.substr(0, last_dot);
  const auto signature = Base64UrlDecode(token.substr(last_dot + 1));
  if (!signature || signature->size() != kMacSize) return Invalid("malformed access token");
  const Mac expected = Hmac(key_, signed_part);
  if (CRYPTO_memcmp(expected.data(), signature->data(), kMacSize) != 0) {
    return Invalid("invalid access token signature");
  }

  const auto payload = Base64UrlDecode(token.substr(first_dot + 1, last_dot - first_dot - 1));
  if (!payload) return Invalid("malformed access token");
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(*payload).get(object) != simdjson::SUCCESS) return Invalid("malformed access token");

  AccessClaims claims;
  std::string_view sub, role, typ, jti;
  if (object["sub"].get(sub) || object["role"].get(role) || object["typ"].get(typ) || object["jti"].get(jti) ||
      object["ver"].get(claims.ver) || object["iat"].get(claims.iat) || object["nbf"].get(claims.nbf) ||
      object["exp"].get(claims.exp)) {
    return Invalid("malformed access token");
  }
  if (typ != "access") return Invalid("not an access token");
  const std::int64_t now_s = Seconds(now);
  const std::int64_t leeway = kJwtLeeway.count();
  if (now_s >= claims.exp + leeway) return Invalid("access token expired");
  if (claims.nbf > now_s + leeway) return Invalid("access token not yet valid");
  if (sub.empty()) return Invalid("malformed access token");
  claims.sub = sub;
  claims.role = role;
  claims.typ = typ;
  claims.jti = jti;
  return claims;
}

}  // namespace chatd::accounts
