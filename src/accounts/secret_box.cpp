#include "accounts/secret_box.hpp"

#include <stdexcept>

#include <fmt/format.h>
#include <sodium.h>

namespace chatd::accounts {

namespace {

constexpr std::string_view kVersion = "v1";
constexpr std::size_t kIdChars = 8;
constexpr std::size_t kHeaderChars = 2 + 1 + kIdChars + 1;  // "v1.<id>."
constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(SecretBox::kKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

// The key id is a hash under the key of a fixed label, so it names the key without
// revealing anything about it (32 bits of a keyed BLAKE2b of a public string).
constexpr std::string_view kKeyIdLabel = "chatd secret_box key id";

void InitSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialise");
}

std::string KeyId(const std::array<unsigned char, SecretBox::kKeyBytes>& key) {
  unsigned char hash[crypto_generichash_BYTES];
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(kKeyIdLabel.data()), kKeyIdLabel.size(),
                     key.data(), key.size());
  char hex[kIdChars + 1];
  sodium_bin2hex(hex, sizeof hex, hash, kIdChars / 2);
  return std::string(hex, kIdChars);
}

// Exactly 32 bytes from base64 in any of libsodium's four variants.
bool DecodeKey(std::string_view text, std::array<unsigned char, SecretBox::kKeyBytes>& key) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  for (const int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                            sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING}) {
    std::size_t length = 0;
    const char* end = nullptr;
    // One spare byte of room, so a longer key fails by length instead of by overflow.
    unsigned char decoded[SecretBox::kKeyBytes + 1];
    if (sodium_base642bin(decoded, sizeof decoded, text.data(), text.size(), nullptr, &length, &end, variant) == 0 &&
        end == text.data() + text.size() && length == SecretBox::kKeyBytes) {
      std::copy(decoded, decoded + SecretBox::kKeyBytes, key.begin());
      sodium_memzero(decoded, sizeof decoded);
      return true;
    }
    sodium_memzero(decoded, sizeof decoded);
  }
  return false;
}

Unexpected BadKey(std::string_view variable) {
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{} must be 32 bytes in base64 (generate one with `openssl rand -base64 32`)", variable),
                   std::string(variable));
}

Unexpected CannotDecrypt(std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("cannot decrypt: {}", why));
}

// The key id of a well-formed "v1.<id>.<payload>", or "" for anything else.
std::string_view KeyIdOf(std::string_view ciphertext) {
  if (ciphertext.size() <= kHeaderChars || ciphertext.substr(0, 3) != "v1." || ciphertext[kHeaderChars - 1] != '.') {
    return {};
  }
  return ciphertext.substr(3, kIdChars);
}

}  // namespace

SecretBox::~SecretBox() {
  for (Key& key : keys_) sodium_memzero(key.bytes.data(), key.bytes.size());
}

Expected<SecretBox> SecretBox::FromBase64(std::string_view current, std::vector<std::string> previous) {
  InitSodium();
  std::vector<Key> keys;
  keys.reserve(1 + previous.size());
  Key key;
  if (!DecodeKey(current, key.bytes)) return BadKey("ENCRYPTION_KEY");
  key.id = KeyId(key.bytes);
  keys.push_back(key);
  for (const std::string& text : previous) {
    if (!DecodeKey(text, key.bytes)) return BadKey("ENCRYPTION_KEY_PREVIOUS");
    key.id = KeyId(key.bytes);
    bool duplicate = false;
    for (const Key& known : keys) {
      if (known.id != key.id) continue;
      if (sodium_memcmp(known.bytes.data(), key.bytes.data(), kKeyBytes) != 0) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "ENCRYPTION_KEY_PREVIOUS: two different keys share a key id; generate a new key",
                         "ENCRYPTION_KEY_PREVIOUS");
      }
      duplicate = true;  // the same key listed twice: harmless
    }
    if (!duplicate) keys.push_back(key);
  }
  sodium_memzero(key.bytes.data(), key.bytes.size());
  return SecretBox(std::move(keys));
}

std::string SecretBox::GenerateKeyBase64() {
  InitSodium();
  unsigned char key[kKeyBytes];
  crypto_aead_xchacha20poly1305_ietf_keygen(key);
  char text[sodium_base64_ENCODED_LEN(kKeyBytes, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(text, sizeof text, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(key, sizeof key);
  return std::string(text);
}

const SecretBox::Key* SecretBox::FindKey(std::string_view id) const {
  for (const Key& key : keys_) {
    if (key.id == id) return &key;
  }
  return nullptr;
}

std::string SecretBox::Encrypt(std::string_view plaintext, std::string_view associated_data) const {
  const Key& key = keys_.front();
  const std::string header = fmt::format("{}.{}.", kVersion, key.id);
  std::string ad = header;
  ad.append(associated_data);

  std::vector<unsigned char> sealed(kNonceBytes + plaintext.size() + kTagBytes);
  randombytes_buf(sealed.data(), kNonceBytes);
  unsigned long long sealed_length = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.data() + kNonceBytes, &sealed_length,
                                             reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                                             reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr,
                                             sealed.data(), key.bytes.data());

  const std::size_t encoded_size =
      sodium_base64_ENCODED_LEN(kNonceBytes + sealed_length, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  std::string out = header;
  out.resize(header.size() + encoded_size);
  sodium_bin2base64(out.data() + header.size(), encoded_size, sealed.data(), kNonceBytes + sealed_length,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.size() - 1);  // the terminating NUL sodium wrote
  return out;
}

Expected<std::string> SecretBox::Decrypt(std::string_view ciphertext, std::string_view associated_data) const {
  const std::string_view id = KeyIdOf(ciphertext);
  if (id.empty()) return CannotDecrypt("malformed");
  const Key* key = FindKey(id);
  if (key == nullptr) return CannotDecrypt("unknown key");

  const std::string_view encoded = ciphertext.substr(kHeaderChars);
  std::vector<unsigned char> sealed(encoded.size());  // base64 decodes to fewer bytes
  std::size_t sealed_length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(sealed.data(), sealed.size(), encoded.data(), encoded.size(), nullptr, &sealed_length, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != encoded.data() + encoded.size() || sealed_length < kNonceBytes + kTagBytes) {
    return CannotDecrypt("malformed");
  }
  std::string ad(ciphertext.substr(0, kHeaderChars));
  ad.append(associated_data);

  std::string plaintext(sealed_length - kNonceBytes - kTagBytes, '\0');
  unsigned long long plaintext_length = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plaintext.data()), &plaintext_length,
                                                 nullptr, sealed.data() + kNonceBytes, sealed_length - kNonceBytes,
                                                 reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
                                                 sealed.data(), key->bytes.data()) != 0) {
    return CannotDecrypt("tampered");
  }
  plaintext.resize(plaintext_length);
  return plaintext;
}

bool SecretBox::NeedsRotation(std::string_view ciphertext) const { return KeyIdOf(ciphertext) != keys_.front().id; }

Expected<std::string> SecretBox::Reencrypt(std::string_view ciphertext, std::string_view associated_data) const {
  auto plaintext = Decrypt(ciphertext, associated_data);
  if (!plaintext) return Unexpected{std::move(plaintext).error()};
  std::string sealed = Encrypt(*plaintext, associated_data);
  sodium_memzero(plaintext->data(), plaintext->size());
  return sealed;
}

}  // namespace chatd::accounts
