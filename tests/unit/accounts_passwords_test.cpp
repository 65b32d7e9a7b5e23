#include <chrono>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <sodium.h>

#include "accounts/passwords.hpp"
#include "accounts/tokens.hpp"
#include "accounts/validation.hpp"
#include "core/sha256.hpp"

namespace chatd::accounts {
namespace {

using namespace std::chrono_literals;

// The cheapest argon2id libsodium accepts: tests only need the format and the logic.
constexpr PasswordHashParams kCheap{1, 8192};

TEST(PasswordsTest, ProductionParamsMeetOwaspMinimum) {
  // OWASP Password Storage Cheat Sheet: argon2id, m >= 19 MiB, t >= 2, p = 1.
  const PasswordHashParams production;
  EXPECT_GE(production.memlimit, 19u * 1024 * 1024);
  EXPECT_GE(production.opslimit, 2u);
  EXPECT_STREQ(crypto_pwhash_STRPREFIX, "$argon2id$");
}

TEST(PasswordsTest, HashesWithArgon2idAndVerifies) {
  const std::string hash = HashPassword("correct horse battery", kCheap);
  EXPECT_EQ(hash.rfind("$argon2id$v=19$m=8,t=1,p=1$", 0), 0u) << hash;
  EXPECT_TRUE(VerifyPassword("correct horse battery", hash));
  EXPECT_FALSE(VerifyPassword("correct horse batterY", hash));
  EXPECT_FALSE(VerifyPassword("", hash));
  EXPECT_FALSE(VerifyPassword("correct horse battery", ""));
  EXPECT_FALSE(VerifyPassword("correct horse battery", "$argon2id$garbage"));
  // Salted: the same password hashes differently.
  EXPECT_NE(hash, HashPassword("correct horse battery", kCheap));
}

TEST(PasswordsTest, PolicyLength) {
  EXPECT_TRUE(CheckPasswordPolicy("tr0ub4dor&3x"));
  auto short_one = CheckPasswordPolicy("7chars!");
  ASSERT_FALSE(short_one);
  EXPECT_EQ(short_one.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(short_one.error().param, "password");
  EXPECT_TRUE(CheckPasswordPolicy("8chars!x"));
  EXPECT_TRUE(CheckPasswordPolicy(std::string(128, 'k')));
  auto long_one = CheckPasswordPolicy(std::string(129, 'k'), "new_password");
  ASSERT_FALSE(long_one);
  EXPECT_EQ(long_one.error().param, "new_password");
  // Characters, not bytes: 128 two-byte characters are fine, 4 are too short.
  std::string umlauts;
  for (int i = 0; i < 128; ++i) umlauts += "\xc3\xa4";
  EXPECT_TRUE(CheckPasswordPolicy(umlauts));
  EXPECT_FALSE(CheckPasswordPolicy("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"));
}

TEST(PasswordsTest, CommonPasswordsAreRefusedCaseInsensitively) {
  for (const char* common : {"password", "12345678", "qwerty123", "iloveyou", "password1", "PASSWORD", "Password123",
                             "Qwertyuiop", "letmein123", "football", "sunshine"}) {
    EXPECT_TRUE(IsCommonPassword(common)) << common;
    auto result = CheckPasswordPolicy(common);
    EXPECT_FALSE(result) << common;
    if (!result) {
      EXPECT_EQ(result.error().param, "password");
    }
  }
  EXPECT_FALSE(IsCommonPassword("a very uncommon passphrase"));
  EXPECT_FALSE(IsCommonPassword("password1234567890xyz"));
}

TEST(TokensTest, Base64UrlRoundTrip) {
  for (std::size_t n = 0; n < 40; ++n) {
    std::string bytes;
    for (std::size_t i = 0; i < n; ++i) bytes.push_back(static_cast<char>(i * 37 + 250));
    const std::string encoded = Base64UrlEncode(bytes);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
    auto decoded = Base64UrlDecode(encoded);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, bytes);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("a"));     // impossible length
  EXPECT_FALSE(Base64UrlDecode("ab=="));  // padding is not base64url-without-padding
  EXPECT_FALSE(Base64UrlDecode("ab+/"));  // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("ab"));    // non-zero leftover bits
}

TEST(TokensTest, RandomTokensAndApiKeys) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string token = RandomToken();
    EXPECT_EQ(token.size(), 43u);
    EXPECT_TRUE(seen.insert(token).second);
  }
  const std::string key = NewApiKeySecret();
  EXPECT_EQ(key.size(), 52u);
  EXPECT_TRUE(LooksLikeApiKey(key));
  EXPECT_EQ(key.rfind("sk-chatd-", 0), 0u);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // The thread's hasher is reused: each digest starts from nothing.
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 hasher;
  hasher.Update("a").Update("bc").Finish();
  const Sha256::Digest again = hasher.Update("abc").Finish();
  EXPECT_EQ(HexEncode(std::string_view(reinterpret_cast<const char*>(again.data()), again.size())),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ValidationTest, NormalizesEmails) {
  auto email = NormalizeEmail("  Alice.Smith@Example.COM \t");
  ASSERT_TRUE(email);
  EXPECT_EQ(*email, "alice.smith@example.com");
  EXPECT_TRUE(NormalizeEmail("a@b.co"));
  EXPECT_TRUE(NormalizeEmail("x+tag@sub.example.org"));
  for (const std::string bad :
       {"", "   ", "alice", "@example.com", "alice@", "alice@example", "a@@b.com", "a@b@c.com", "al ice@example.com",
        "alice@.com", "alice@example.", "alice@exa..mple.com", "al\x01ice@example.com"}) {
    auto result = NormalizeEmail(bad);
    EXPECT_FALSE(result) << bad;
    if (!result) {
      EXPECT_EQ(result.error().param, "email");
    }
  }
  EXPECT_TRUE(NormalizeEmail(std::string(242, 'a') + "@example.com"));   // 254
  EXPECT_FALSE(NormalizeEmail(std::string(243, 'a') + "@example.com"));  // 255
}

TEST(ValidationTest, Names) {
  EXPECT_TRUE(CheckName("", "name"));
  EXPECT_FALSE(CheckName("", "name", 1));
  EXPECT_TRUE(CheckName(std::string(100, 'n'), "name"));
  auto too_long = CheckName(std::string(101, 'n'), "name");
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().param, "name");
  EXPECT_FALSE(CheckName("bad\nname", "name"));
}

TEST(ValidationTest, ParsesRfc3339) {
  const auto base = ParseRfc3339("2026-01-02T03:04:05Z");
  ASSERT_TRUE(base);
  EXPECT_EQ(FormatRfc3339(*base), "2026-01-02T03:04:05.000Z");
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-01-02T03:04:05.678Z")), "2026-01-02T03:04:05.678Z");
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-01-02T05:04:05.5+02:00")), "2026-01-02T03:04:05.500Z");
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-01-01t23:04:05-04:00")), "2026-01-02T03:04:05.000Z");
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2024-02-29T23:59:59.999Z")), "2024-02-29T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339(SystemTime{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(SystemTime{} - std::chrono::milliseconds(1)), "1969-12-31T23:59:59.999Z");
  for (const char* bad :
       {"", "2026-01-02", "2026-01-02 03:04:05Z", "2026-13-02T03:04:05Z", "2026-02-30T03:04:05Z", "2026-01-02T03:04:05",
        "2026-01-02T03:04:05+0200", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05Zjunk", "tomorrow"}) {
    EXPECT_FALSE(ParseRfc3339(bad)) << bad;
  }
}

}  // namespace
}  // namespace chatd::accounts
