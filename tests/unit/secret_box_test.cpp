#include "accounts/secret_box.hpp"

#include <gtest/gtest.h>

namespace chatd::accounts {
namespace {

SecretBox Box(const std::string& current, std::vector<std::string> previous = {}) {
  auto box = SecretBox::FromBase64(current, std::move(previous));
  EXPECT_TRUE(box) << box.error().message;
  return std::move(box).value();
}

TEST(SecretBox, RoundTripsWithTheSameAssociatedData) {
  const SecretBox box = Box(SecretBox::GenerateKeyBase64());
  const std::string sealed = box.Encrypt("sk-live-123", "provider_keys.api_key:42");
  EXPECT_TRUE(sealed.starts_with("v1." + box.current_key_id() + "."));
  EXPECT_EQ(sealed.find("sk-live"), std::string::npos);
  auto opened = box.Decrypt(sealed, "provider_keys.api_key:42");
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(*opened, "sk-live-123");

  auto empty = box.Decrypt(box.Encrypt(""));
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");
  const std::string binary("a\0b\xff", 4);
  EXPECT_EQ(*box.Decrypt(box.Encrypt(binary)), binary);
}

TEST(SecretBox, UsesAFreshNonceEachTime) {
  const SecretBox box = Box(SecretBox::GenerateKeyBase64());
  EXPECT_NE(box.Encrypt("same"), box.Encrypt("same"));
}

TEST(SecretBox, RefusesTamperedCiphertextAndOtherAssociatedData) {
  const SecretBox box = Box(SecretBox::GenerateKeyBase64());
  const std::string sealed = box.Encrypt("secret", "row:1");
  for (std::size_t i = 12; i < sealed.size(); ++i) {
    std::string tampered = sealed;
    tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
    auto result = box.Decrypt(tampered, "row:1");
    ASSERT_FALSE(result) << "position " << i;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  }
  auto wrong_ad = box.Decrypt(sealed, "row:2");
  ASSERT_FALSE(wrong_ad);
  EXPECT_EQ(wrong_ad.error().message, "cannot decrypt: tampered");
  EXPECT_FALSE(box.Decrypt(sealed));  // associated data is required when it was given
  EXPECT_FALSE(box.Decrypt(sealed.substr(0, sealed.size() - 1), "row:1"));
  EXPECT_FALSE(box.Decrypt("v1." + box.current_key_id() + ".", "row:1"));
  EXPECT_EQ(box.Decrypt("plaintext").error().message, "cannot decrypt: malformed");
  EXPECT_EQ(box.Decrypt("").error().message, "cannot decrypt: malformed");
}

TEST(SecretBox, UnknownKeyIsNamed) {
  const SecretBox a = Box(SecretBox::GenerateKeyBase64());
  const SecretBox b = Box(SecretBox::GenerateKeyBase64());
  auto result = b.Decrypt(a.Encrypt("x"));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.error().message, "cannot decrypt: unknown key");
}

TEST(SecretBox, RotatesFromAPreviousKey) {
  const std::string old_key = SecretBox::GenerateKeyBase64();
  const std::string new_key = SecretBox::GenerateKeyBase64();
  const SecretBox before = Box(old_key);
  const std::string sealed = before.Encrypt("token", "users.oauth:7");
  EXPECT_FALSE(before.NeedsRotation(sealed));

  const SecretBox after = Box(new_key, {old_key});
  EXPECT_NE(after.current_key_id(), before.current_key_id());
  auto opened = after.Decrypt(sealed, "users.oauth:7");
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(*opened, "token");
  EXPECT_TRUE(after.NeedsRotation(sealed));

  auto rotated = after.Reencrypt(sealed, "users.oauth:7");
  ASSERT_TRUE(rotated) << rotated.error().message;
  EXPECT_FALSE(after.NeedsRotation(*rotated));
  EXPECT_EQ(*after.Decrypt(*rotated, "users.oauth:7"), "token");
  // Once the old key is retired, only the rotated value still opens.
  const SecretBox retired = Box(new_key);
  EXPECT_FALSE(retired.Decrypt(sealed, "users.oauth:7"));
  EXPECT_TRUE(retired.Decrypt(*rotated, "users.oauth:7"));

  EXPECT_FALSE(after.Reencrypt(sealed, "wrong ad"));
  EXPECT_TRUE(after.NeedsRotation("garbage"));
}

TEST(SecretBox, KeyIdIsStableAndKeyringAcceptsAnyBase64Alphabet) {
  // 32 bytes 0xfb..., whose base64 uses '+' and '/' (URL-safe: '-' and '_').
  const std::string standard = "+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=";
  const std::string url_safe = "-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s";
  const SecretBox a = Box(standard);
  const SecretBox b = Box(" " + url_safe + " ");
  EXPECT_EQ(a.current_key_id(), b.current_key_id());
  EXPECT_EQ(a.current_key_id().size(), 8u);
  EXPECT_EQ(*b.Decrypt(a.Encrypt("x")), "x");
  // The same key listed again as previous is harmless.
  EXPECT_TRUE(SecretBox::FromBase64(standard, {url_safe}));
}

TEST(SecretBox, RejectsKeysThatAreNot32BytesAndNeverEchoesThem) {
  const std::string short_key = "c2hvcnQta2V5LXNlY3JldA==";  // 16 bytes
  auto bad_current = SecretBox::FromBase64(short_key, {});
  ASSERT_FALSE(bad_current);
  EXPECT_EQ(bad_current.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_current.error().message.find("ENCRYPTION_KEY"), std::string::npos);
  EXPECT_EQ(bad_current.error().message.find(short_key), std::string::npos);

  const std::string long_key = SecretBox::GenerateKeyBase64().substr(0, 43) + "AAAA";  // 33+ bytes
  EXPECT_FALSE(SecretBox::FromBase64(long_key, {}));
  EXPECT_FALSE(SecretBox::FromBase64("", {}));
  EXPECT_FALSE(SecretBox::FromBase64("not base64 at all!!", {}));

  auto bad_previous = SecretBox::FromBase64(SecretBox::GenerateKeyBase64(), {short_key});
  ASSERT_FALSE(bad_previous);
  EXPECT_NE(bad_previous.error().message.find("ENCRYPTION_KEY_PREVIOUS"), std::string::npos);
  EXPECT_EQ(bad_previous.error().message.find(short_key), std::string::npos);
}

TEST(SecretBox, GeneratedKeysAre32BytesOfStandardBase64) {
  const std::string key = SecretBox::GenerateKeyBase64();
  EXPECT_EQ(key.size(), 44u);
  EXPECT_EQ(key.back(), '=');
  EXPECT_NE(key, SecretBox::GenerateKeyBase64());
}

}  // namespace
}  // namespace chatd::accounts
