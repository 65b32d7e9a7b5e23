#include "core/sha256.hpp"

#include <new>
#include <stdexcept>

#include <openssl/evp.h>

namespace chatd {
namespace {

// Fetched once: OpenSSL 3 resolves EVP_sha256() through the provider store on every
// EVP_DigestInit_ex (a lock and a lookup), a visible share of a gateway request that
// hashes its API key; an explicitly fetched EVP_MD skips that.
const EVP_MD* Sha256Method() {
  static EVP_MD* const method = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return method != nullptr ? method : EVP_sha256();
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (context_ == nullptr) throw std::bad_alloc();
  if (EVP_DigestInit_ex(context_, Sha256Method(), nullptr) != 1) {
    EVP_MD_CTX_free(context_);
    throw std::runtime_error("SHA-256: EVP_DigestInit_ex failed");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_); }

Sha256& Sha256::Update(std::string_view bytes) {
  if (EVP_DigestUpdate(context_, bytes.data(), bytes.size()) != 1) {
    throw std::runtime_error("SHA-256: EVP_DigestUpdate failed");
  }
  return *this;
}

Sha256::Digest Sha256::Finish() {
  Digest digest{};
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(context_, digest.data(), &size) != 1 || size != kDigestSize) {
    throw std::runtime_error("SHA-256: EVP_DigestFinal_ex failed");
  }
  if (EVP_DigestInit_ex(context_, Sha256Method(), nullptr) != 1) {
    throw std::runtime_error("SHA-256: EVP_DigestInit_ex failed");
  }
  return digest;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * bytes.size(), '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[byte >> 4];
    out[2 * i + 1] = kHex[byte & 15];
  }
  return out;
}

std::string Sha256Hex(std::string_view text) {
  // One hasher per thread, reused: a new one per call cost two allocations on every
  // API-key check.
  thread_local Sha256 hasher;
  const Sha256::Digest digest = hasher.Update(text).Finish();
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

}  // namespace chatd
