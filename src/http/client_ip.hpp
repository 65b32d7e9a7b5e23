// Who the client is when chatd runs behind a reverse proxy. The TCP peer is then the
// proxy, and the client's IP arrives in X-Forwarded-For / X-Real-IP — headers anyone can
// send, so they are believed only when the peer is a trusted proxy (TRUSTED_PROXIES).
//
// X-Forwarded-For is read from the right: each proxy appends the address it received the
// request from, so the rightmost entries were written by our own proxies and the first
// untrusted address from the right is the last one a trusted proxy vouches for. Entries
// further left were written by the client and are ignored.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "http/middleware.hpp"

namespace chatd::http {

/// A set of IP ranges ("10.0.0.0/8", "192.168.1.1", "::1/128", "fd00::/8"). IPv4 is held
/// as IPv4-mapped IPv6 (::ffff:a.b.c.d), so a mapped address matches IPv4 ranges.
class CidrSet {
 public:
  CidrSet() = default;  // empty: contains nothing

  /// Comma-separated entries; spaces around entries and empty entries are ignored. Host
  /// bits below the prefix are ignored ("10.0.0.1/8" is 10.0.0.0/8). kInvalidArgument
  /// naming the first bad entry.
  static Expected<CidrSet> Parse(std::string_view list);
  static Expected<CidrSet> Parse(const std::vector<std::string>& entries);

  /// False for anything that is not an IP address.
  bool Contains(std::string_view ip) const;
  bool empty() const { return ranges_.empty(); }

  /// An IP address as 16 bytes (IPv4 mapped into IPv6): two big-endian halves.
  struct Address {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    bool v4 = false;
  };
  /// Parses a bare IPv4 or IPv6 address (no port, brackets or zone); nullopt otherwise.
  static std::optional<Address> ParseAddress(std::string_view ip);
  bool Contains(const Address& address) const;

 private:
  struct Range {
    Address network;
    Address mask;
  };
  std::vector<Range> ranges_;
};

/// Sets Request::client_address: the peer's address unless the peer is in `trusted`;
/// then the first untrusted address from the right of X-Forwarded-For (all X-Forwarded-For
/// headers, in order, as one list; a malformed entry stops the walk at the last good
/// one), or X-Real-IP when there is no X-Forwarded-For. IPv4-mapped addresses are written
/// as plain IPv4. Put it first in the chain so every later hook sees the client.
std::unique_ptr<Middleware> MakeClientAddress(CidrSet trusted);

}  // namespace chatd::http
