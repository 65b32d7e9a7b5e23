#include "core/ids.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <random>

namespace chatd {

namespace {
std::mt19937_64& ThreadRng() {
  thread_local std::mt19937_64 rng{[] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }()};
  return rng;
}
}  // namespace

std::string NewUuidV7() {
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  const std::uint64_t random_a = ThreadRng()();
  const std::uint64_t random_b = ThreadRng()();
  std::array<std::uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  bytes[6] = static_cast<std::uint8_t>(0x70 | ((random_a >> 8) & 0x0f));  // version 7
  bytes[7] = static_cast<std::uint8_t>(random_a);
  bytes[8] = static_cast<std::uint8_t>(0x80 | ((random_b >> 56) & 0x3f));  // variant 10
  for (int i = 9; i < 16; ++i) bytes[i] = static_cast<std::uint8_t>(random_b >> (8 * (15 - i)));

  // Written in place: two per gateway request (its id, its usage event's), and 36
  // push_backs, each checking the capacity, cost as much as the rest.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  char* digit = out.data();
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++digit;  // past a dash
    *digit++ = kHex[bytes[i] >> 4];
    *digit++ = kHex[bytes[i] & 0x0f];
  }
  return out;
}

bool LooksLikeUuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace chatd
