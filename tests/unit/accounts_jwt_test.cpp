#include <array>
#include <chrono>
#include <string>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "accounts/jwt.hpp"
#include "accounts/tokens.hpp"

namespace chatd::accounts {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kKey = "0123456789abcdef0123456789abcdef-test-key";
const SystemTime kNow{std::chrono::seconds(1'800'000'000)};

AccessClaims Claims() {
  AccessClaims claims;
  claims.sub = "0190a1b2-0000-7000-8000-000000000001";
  claims.role = "user";
  claims.jti = "0190a1b2-0000-7000-8000-0000000000ff";
  claims.ver = 3;
  claims.iat = 1'800'000'000;
  claims.nbf = claims.iat;
  claims.exp = claims.iat + 1800;
  return claims;
}

std::string HmacB64(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac.data(), &length);
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
}

// A token with any header and payload JSON, correctly HMAC-signed with `key`.
std::string Forge(std::string_view header_json, std::string_view payload_json, std::string_view key = kKey) {
  std::string token = Base64UrlEncode(header_json) + "." + Base64UrlEncode(payload_json);
  return token + "." + HmacB64(key, token);
}

constexpr std::string_view kPayload =
    R"({"sub":"u1","role":"admin","typ":"access","ver":0,"jti":"j","iat":1800000000,"nbf":1800000000,"exp":1800001800})";

TEST(JwtTest, RoundTrip) {
  const JwtCodec codec{std::string(kKey)};
  const std::string token = codec.Sign(Claims());
  EXPECT_EQ(std::count(token.begin(), token.end(), '.'), 2);
  EXPECT_EQ(token.find('='), std::string::npos);  // no padding
  auto claims = codec.Verify(token, kNow);
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->sub, Claims().sub);
  EXPECT_EQ(claims->role, "user");
  EXPECT_EQ(claims->typ, "access");
  EXPECT_EQ(claims->jti, Claims().jti);
  EXPECT_EQ(claims->ver, 3);
  EXPECT_EQ(claims->exp, Claims().exp);
}

TEST(JwtTest, ForgedWithOurHeaderVerifies) {
  // Guards the helpers below: the same construction with the real header is accepted.
  const JwtCodec codec{std::string(kKey)};
  EXPECT_TRUE(codec.Verify(Forge(R"({"alg":"HS256","typ":"JWT"})", kPayload), kNow));
}

TEST(JwtTest, RejectsAlgNone) {
  const JwtCodec codec{std::string(kKey)};
  const std::string unsigned_token =
      Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + Base64UrlEncode(kPayload) + ".";
  auto result = codec.Verify(unsigned_token, kNow);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kUnauthenticated);
  // Even "signed" with the key, alg none is not accepted.
  EXPECT_FALSE(codec.Verify(Forge(R"({"alg":"none","typ":"JWT"})", kPayload), kNow));
}

TEST(JwtTest, RejectsOtherAlgorithmsAndMissingAlg) {
  const JwtCodec codec{std::string(kKey)};
  EXPECT_FALSE(codec.Verify(Forge(R"({"alg":"RS256","typ":"JWT"})", kPayload), kNow));
  EXPECT_FALSE(codec.Verify(Forge(R"({"alg":"HS512","typ":"JWT"})", kPayload), kNow));
  EXPECT_FALSE(codec.Verify(Forge(R"({"typ":"JWT"})", kPayload), kNow));
  EXPECT_FALSE(codec.Verify(Forge(R"({"alg":"hs256","typ":"JWT"})", kPayload), kNow));
}

TEST(JwtTest, RejectsAnotherKey) {
  const JwtCodec codec{std::string(kKey)};
  const JwtCodec other{"another-key-another-key-another-key!"};
  EXPECT_FALSE(codec.Verify(other.Sign(Claims()), kNow));
  EXPECT_FALSE(codec.Verify(Forge(R"({"alg":"HS256","typ":"JWT"})", kPayload, "wrong"), kNow));
}

TEST(JwtTest, RejectsTamperedPayload) {
  const JwtCodec codec{std::string(kKey)};
  const std::string token = codec.Sign(Claims());
  const auto first = token.find('.');
  const auto last = token.rfind('.');
  std::string payload = *Base64UrlDecode(token.substr(first + 1, last - first - 1));
  payload.replace(payload.find("\"user\""), 6, "\"admin\"");
  const std::string tampered = token.substr(0, first + 1) + Base64UrlEncode(payload) + token.substr(last);
  auto result = codec.Verify(tampered, kNow);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "invalid access token signature");

  // A flipped signature character, too.
  std::string flipped = token;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(codec.Verify(flipped, kNow));
}

TEST(JwtTest, RejectsExpired) {
  const JwtCodec codec{std::string(kKey)};
  const std::string token = codec.Sign(Claims());
  EXPECT_TRUE(codec.Verify(token, kNow + 1799s));
  EXPECT_TRUE(codec.Verify(token, kNow + 1800s));  // within the leeway
  auto result = codec.Verify(token, kNow + 1800s + kJwtLeeway);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "access token expired");
}

TEST(JwtTest, RejectsNotYetValid) {
  const JwtCodec codec{std::string(kKey)};
  AccessClaims claims = Claims();
  claims.nbf = claims.iat + 600;
  const std::string token = codec.Sign(claims);
  auto result = codec.Verify(token, kNow);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "access token not yet valid");
  EXPECT_TRUE(codec.Verify(token, kNow + 600s));
}

TEST(JwtTest, RejectsRefreshTyp) {
  const JwtCodec codec{std::string(kKey)};
  AccessClaims claims = Claims();
  claims.typ = "refresh";
  auto result = codec.Verify(codec.Sign(claims), kNow);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "not an access token");
}

TEST(JwtTest, RejectsMissingClaims) {
  const JwtCodec codec{std::string(kKey)};
  EXPECT_FALSE(codec.Verify(
      Forge(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"u1","role":"user","typ":"access","exp":1800001800})"), kNow));
  EXPECT_FALSE(codec.Verify(Forge(R"({"alg":"HS256","typ":"JWT"})", "not json"), kNow));
  EXPECT_FALSE(codec.Verify(
      Forge(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"u1","role":"user","typ":"access","ver":"0","jti":"j",)"
                                              R"("iat":1800000000,"nbf":1800000000,"exp":1800001800})"),
      kNow));
}

TEST(JwtTest, RejectsMalformed) {
  const JwtCodec codec{std::string(kKey)};
  const std::string token = codec.Sign(Claims());
  for (const std::string& bad :
       {std::string(), std::string("abc"), std::string("a.b"), std::string("..."), token + ".",
        token.substr(0, token.rfind('.')), token + "x", "Bearer " + token, std::string(5000, 'a')}) {
    auto result = codec.Verify(bad, kNow);
    EXPECT_FALSE(result) << bad;
    if (!result) {
      EXPECT_EQ(result.error().code, ErrorCode::kUnauthenticated);
    }
  }
}

}  // namespace
}  // namespace chatd::accounts
