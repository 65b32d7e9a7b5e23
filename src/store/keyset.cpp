#include "store/keyset.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

namespace chatd::store {

namespace {
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMaxCursorLength = 200;

// "YYYY-MM-DDTHH:MM:SS.mmmZ" naming a real instant: the cursor's sort key is bound as a
// timestamp, and PostgreSQL would refuse anything else with an error that is not the
// client's 400.
bool IsOurTimestamp(std::string_view t) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (t.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (kShape[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != kShape[i]) return false;
  }
  const auto number = [t](std::size_t at, std::size_t digits) {
    int value = 0;
    for (std::size_t i = at; i < at + digits; ++i) value = value * 10 + (t[i] - '0');
    return value;
  };
  const std::chrono::year_month_day date{std::chrono::year{number(0, 4)},
                                         std::chrono::month{static_cast<unsigned>(number(5, 2))},
                                         std::chrono::day{static_cast<unsigned>(number(8, 2))}};
  return date.ok() && number(11, 2) < 24 && number(14, 2) < 60 && number(17, 2) < 60;
}

}  // namespace

std::string EncodeCursorText(std::string_view plain) {
  std::string out;
  out.reserve((plain.size() * 4 + 2) / 3);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const unsigned char c : plain) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(buffer >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kBase64Url[(buffer << (6 - bits)) & 0x3f]);
  return out;
}

std::optional<std::string> DecodeCursorText(std::string_view encoded) {
  if (encoded.size() > kMaxCursorLength) return std::nullopt;
  std::string plain;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : encoded) {
    const char* found = std::char_traits<char>::find(kBase64Url, 64, c);
    if (found == nullptr) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(found - kBase64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      plain.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return plain;
}

std::string EncodeKeysetCursor(std::string_view sort_key, std::string_view id) {
  std::string plain;
  plain.reserve(sort_key.size() + 1 + id.size());
  plain.append(sort_key).append("|").append(id);
  return EncodeCursorText(plain);
}

Expected<KeysetCursor> DecodeKeysetCursor(std::string_view cursor) {
  auto invalid = [] { return MakeError(ErrorCode::kInvalidArgument, "invalid cursor", "cursor"); };
  const auto plain = DecodeCursorText(cursor);
  if (!plain) return invalid();
  const auto bar = plain->find('|');
  if (bar == std::string::npos || bar == 0 || bar + 1 == plain->size()) return invalid();
  KeysetCursor decoded{plain->substr(0, bar), plain->substr(bar + 1)};
  if (!IsOurTimestamp(decoded.sort_key)) return invalid();
  return decoded;
}

std::int64_t KeysetPageLimit(const PageRequest& page) {
  const std::size_t limit = page.limit == 0 ? 20 : std::min<std::size_t>(page.limit, 1000);
  return static_cast<std::int64_t>(limit);
}

std::string LikeSubstringPattern(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('%');
  for (const char c : text) {
    if (c == '%' || c == '_' || c == '\\') out.push_back('\\');
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  out.push_back('%');
  return out;
}

Expected<std::int64_t> AppendKeysetPage(std::string& sql, Params& params, const PageRequest& page,
                                        std::string_view column, SortOrder order) {
  const std::string_view after = order == SortOrder::kAscending ? ">" : "<";
  const std::string_view direction = order == SortOrder::kAscending ? "" : " DESC";
  if (!page.cursor.empty()) {
    auto cursor = DecodeKeysetCursor(page.cursor);
    if (!cursor) return Unexpected{std::move(cursor).error()};
    params.emplace_back(std::move(cursor->sort_key));
    const std::string key = "$" + std::to_string(params.size());
    params.emplace_back(std::move(cursor->id));
    const std::string id = "$" + std::to_string(params.size());
    sql += fmt::format(" AND ({0} {1} {2} OR ({0} = {2} AND id {1} {3}))", column, after, key, id);
  }
  const std::int64_t limit = KeysetPageLimit(page);
  params.emplace_back(limit + 1);
  sql += fmt::format(" ORDER BY {0}{1}, id{1} LIMIT ${2}", column, direction, params.size());
  return limit;
}

}  // namespace chatd::store
