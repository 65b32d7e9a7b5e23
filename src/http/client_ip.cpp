#include "http/client_ip.hpp"

#include <charconv>
#include <cstring>

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

namespace chatd::http {

namespace {

constexpr std::uint64_t kV4MappedHigh = 0;
constexpr std::uint64_t kV4MappedLowPrefix = 0x0000'ffff'0000'0000ULL;

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::uint64_t BigEndian64(const unsigned char* bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | bytes[i];
  return value;
}

// The mask of a prefix length over 128 bits.
CidrSet::Address Mask(unsigned prefix) {
  CidrSet::Address mask;
  mask.high = prefix >= 64 ? ~0ULL : prefix == 0 ? 0 : ~0ULL << (64 - prefix);
  mask.low = prefix <= 64 ? 0 : prefix >= 128 ? ~0ULL : ~0ULL << (128 - prefix);
  return mask;
}

// An address taken from a header: a bare IP, or "[v6]", "[v6]:port", "v4:port" as some
// proxies write them.
std::optional<CidrSet::Address> ParseHeaderAddress(std::string_view token) {
  token = Trim(token);
  if (!token.empty() && token.front() == '[') {
    const auto close = token.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = token.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    token = token.substr(1, close - 1);
  } else if (const auto colon = token.find(':');
             colon != std::string_view::npos && token.find(':', colon + 1) == std::string_view::npos) {
    token = token.substr(0, colon);  // "1.2.3.4:5678"
  }
  return CidrSet::ParseAddress(token);
}

std::string Format(const CidrSet::Address& address) {
  if (address.v4) {
    const auto v4 = static_cast<std::uint32_t>(address.low);
    return fmt::format("{}.{}.{}.{}", v4 >> 24, (v4 >> 16) & 0xff, (v4 >> 8) & 0xff, v4 & 0xff);
  }
  boost::asio::ip::address_v6::bytes_type bytes;
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<unsigned char>(address.high >> (56 - 8 * i));
    bytes[8 + i] = static_cast<unsigned char>(address.low >> (56 - 8 * i));
  }
  return boost::asio::ip::address_v6(bytes).to_string();
}

class ClientAddress final : public Middleware {
 public:
  explicit ClientAddress(CidrSet trusted) : trusted_(std::move(trusted)) {}

  std::optional<Response> OnRequest(Request& request) override {
    const auto peer = CidrSet::ParseAddress(request.remote_address);
    if (!peer) {
      request.client_address = request.remote_address;
      return std::nullopt;
    }
    // Headers from an untrusted peer are the client's own claims: ignored.
    const CidrSet::Address client = trusted_.Contains(*peer) ? FromHeaders(request, *peer) : *peer;
    // The client is the peer itself (no proxy named another): its own text, when that is
    // already the form Format writes (a plain IPv4 or IPv6 address, not an IPv4-mapped
    // one) — most requests, and Format costs a formatted allocation.
    const bool peer_itself = client.high == peer->high && client.low == peer->low && client.v4 == peer->v4;
    const bool canonical = !peer->v4 || request.remote_address.find(':') == std::string::npos;
    request.client_address = peer_itself && canonical ? request.remote_address : Format(client);
    return std::nullopt;
  }

 private:
  CidrSet::Address FromHeaders(const Request& request, CidrSet::Address client) const {
    bool forwarded = false;
    // Every X-Forwarded-For header, last to first, each from its right end: one list.
    for (auto header = request.headers.rbegin(); header != request.headers.rend(); ++header) {
      if (!EqualsIgnoreCase(header->first, "X-Forwarded-For")) continue;
      forwarded = true;
      std::string_view rest = header->second;
      while (true) {
        const auto comma = rest.rfind(',');
        const std::string_view token = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
        const auto address = ParseHeaderAddress(token);
        if (!address) return client;  // malformed: stop at the last address we trust
        client = *address;
        if (!trusted_.Contains(client)) return client;
        if (comma == std::string_view::npos) break;
        rest = rest.substr(0, comma);
      }
    }
    if (!forwarded) {
      if (const auto real_ip = ParseHeaderAddress(request.Header("X-Real-IP"))) return *real_ip;
    }
    return client;  // every hop was a trusted proxy: the leftmost one
  }

  CidrSet trusted_;
};

}  // namespace

std::optional<CidrSet::Address> CidrSet::ParseAddress(std::string_view ip) {
  // inet_pton needs a terminated string; 45 characters is the longest IPv6 text form.
  // A '%' zone is refused: it means nothing off-link, and resolving it costs a syscall.
  char text[64];
  if (ip.empty() || ip.size() > 45 || ip.find('%') != std::string_view::npos) return std::nullopt;
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';
  boost::system::error_code ec;
  Address address;
  if (ip.find(':') == std::string_view::npos) {
    const auto v4 = boost::asio::ip::make_address_v4(text, ec);
    if (ec) return std::nullopt;
    address.high = kV4MappedHigh;
    address.low = kV4MappedLowPrefix | v4.to_uint();
    address.v4 = true;
    return address;
  }
  const auto v6 = boost::asio::ip::make_address_v6(text, ec);
  if (ec) return std::nullopt;
  const auto bytes = v6.to_bytes();
  address.high = BigEndian64(bytes.data());
  address.low = BigEndian64(bytes.data() + 8);
  address.v4 = v6.is_v4_mapped();
  return address;
}

bool CidrSet::Contains(const Address& address) const {
  for (const Range& range : ranges_) {
    if ((address.high & range.mask.high) == range.network.high && (address.low & range.mask.low) == range.network.low) {
      return true;
    }
  }
  return false;
}

bool CidrSet::Contains(std::string_view ip) const {
  const auto address = ParseAddress(Trim(ip));
  return address && Contains(*address);
}

Expected<CidrSet> CidrSet::Parse(const std::vector<std::string>& entries) {
  CidrSet set;
  for (const std::string& raw : entries) {
    const std::string_view entry = Trim(raw);
    if (entry.empty()) continue;
    auto bad = [&] {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("'{}' is not an IP address or CIDR range (e.g. 10.0.0.0/8, ::1)", entry),
                       std::string(entry));
    };
    const auto slash = entry.find('/');
    const auto address = ParseAddress(entry.substr(0, slash));
    if (!address) return bad();
    // IPv4 prefixes count within the mapped range's last 32 bits.
    const unsigned offset = address->v4 && entry.find(':') == std::string_view::npos ? 96 : 0;
    unsigned prefix = 128;
    if (slash != std::string_view::npos) {
      const std::string_view digits = entry.substr(slash + 1);
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || prefix + offset > 128) {
        return bad();
      }
      prefix += offset;
    }
    Range range{.network = *address, .mask = Mask(prefix)};
    range.network.high &= range.mask.high;
    range.network.low &= range.mask.low;
    set.ranges_.push_back(range);
  }
  return set;
}

Expected<CidrSet> CidrSet::Parse(std::string_view list) {
  std::vector<std::string> entries;
  while (true) {
    const auto comma = list.find(',');
    entries.emplace_back(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return Parse(entries);
}

std::unique_ptr<Middleware> MakeClientAddress(CidrSet trusted) {
  return std::make_unique<ClientAddress>(std::move(trusted));
}

}  // namespace chatd::http
