// SecretBox: encryption of secrets stored in the database (provider API keys, OAuth
// tokens), so a leaked database or backup does not leak them.
//
// XChaCha20-Poly1305 (libsodium's IETF AEAD) with a random 24-byte nonce per message —
// random nonces are safe at this size, so no counter has to be kept. A ciphertext is text:
//
//   v1.<key id>.<base64url(nonce || ciphertext || tag)>
//
// The key id (8 hex characters, a BLAKE2b hash of the key) says which key of the keyring
// sealed it, so keys rotate without a flag day: set the new key as ENCRYPTION_KEY, the old
// one in ENCRYPTION_KEY_PREVIOUS; both decrypt, new writes use the new key, and rows are
// rewritten with Reencrypt where NeedsRotation says so. The "v1.<key id>." prefix and the
// caller's associated data (e.g. "provider_keys.api_key:<row id>") are authenticated, so a
// ciphertext copied to another row or column does not decrypt.
//
// Thread-safe: all methods are const and libsodium is initialised once.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace chatd::accounts {

class SecretBox {
 public:
  static constexpr std::size_t kKeyBytes = 32;

  /// A keyring from base64 keys (standard or URL-safe alphabet, padding optional): the
  /// current key (ENCRYPTION_KEY) and previous ones still accepted for decryption
  /// (ENCRYPTION_KEY_PREVIOUS). kInvalidArgument naming the variable when a key is not
  /// exactly 32 bytes of base64; the error never contains key material.
  static Expected<SecretBox> FromBase64(std::string_view current, std::vector<std::string> previous);
  /// A new random key, base64 (standard alphabet, padded), for ENCRYPTION_KEY.
  static std::string GenerateKeyBase64();

  SecretBox(const SecretBox&) = default;
  SecretBox(SecretBox&&) = default;
  SecretBox& operator=(const SecretBox&) = default;
  SecretBox& operator=(SecretBox&&) = default;
  ~SecretBox();

  /// Seals `plaintext` under the current key, binding `associated_data` (which the
  /// caller must pass again to decrypt; it is not stored).
  std::string Encrypt(std::string_view plaintext, std::string_view associated_data = {}) const;
  /// kInvalidArgument: "cannot decrypt: malformed" (not a v1 ciphertext), "cannot
  /// decrypt: unknown key" (sealed under a key not in the keyring), "cannot decrypt:
  /// tampered" (modified, or other associated data).
  Expected<std::string> Decrypt(std::string_view ciphertext, std::string_view associated_data = {}) const;
  /// True when `ciphertext` is not sealed under the current key (including malformed).
  bool NeedsRotation(std::string_view ciphertext) const;
  /// Decrypts with whichever key sealed it and seals again under the current key.
  Expected<std::string> Reencrypt(std::string_view ciphertext, std::string_view associated_data = {}) const;

  /// The current key's id, e.g. for a startup log line.
  const std::string& current_key_id() const { return keys_.front().id; }

 private:
  struct Key {
    std::string id;  // 8 hex characters
    std::array<unsigned char, kKeyBytes> bytes{};
  };
  explicit SecretBox(std::vector<Key> keys) : keys_(std::move(keys)) {}
  const Key* FindKey(std::string_view id) const;

  std::vector<Key> keys_;  // the current key first
};

}  // namespace chatd::accounts
