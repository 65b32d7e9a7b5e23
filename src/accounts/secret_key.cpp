#include "accounts/secret_key.hpp"

#include <array>
#include <stdexcept>

#include <sodium.h>

namespace chatd::accounts {

std::string GenerateSecretKey() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  std::array<unsigned char, 48> key{};
  randombytes_buf(key.data(), key.size());
  std::string out(sodium_base64_ENCODED_LEN(key.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.find('\0'));
  return out;
}

}  // namespace chatd::accounts
