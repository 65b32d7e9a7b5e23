// SHA-256 (OpenSSL's EVP interface): whole strings as hex, for stored token and key
// hashes, and fed in pieces for keys built from several parts (the gateway's response
// cache), so the parts never have to be concatenated first.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace chatd {

class Sha256 {
 public:
  static constexpr std::size_t kDigestSize = 32;
  using Digest = std::array<unsigned char, kDigestSize>;

  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& Update(std::string_view bytes);
  /// The digest of everything fed so far; the hasher then starts over, ready for the next
  /// input (one can be kept and reused: no allocation per digest).
  Digest Finish();

 private:
  evp_md_ctx_st* context_;
};

/// SHA-256 of `text` as 64 lower-case hex characters.
std::string Sha256Hex(std::string_view text);

/// Lower-case hex of `bytes` (two characters a byte).
std::string HexEncode(std::string_view bytes);

}  // namespace chatd
