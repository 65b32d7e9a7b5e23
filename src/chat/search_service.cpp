#include "chat/search_service.hpp"

#include <cstdint>
#include <random>
#include <utility>

#include <fmt/format.h>

namespace chatd::chat {

namespace {

Unexpected InvalidQuery(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), "q");
}

// Code points in `text`, or nullopt when it is not well-formed UTF-8 (overlong forms,
// surrogates and values past U+10FFFF included): PostgreSQL refuses such text, and it
// must be the client's 400, not a database error.
std::optional<std::size_t> Utf8CodePoints(std::string_view text) {
  std::size_t count = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (byte < 0x80) {
      length = 1;
      code = byte;
    } else if ((byte & 0xe0) == 0xc0) {
      length = 2;
      code = byte & 0x1f;
    } else if ((byte & 0xf0) == 0xe0) {
      length = 3;
      code = byte & 0x0f;
    } else if ((byte & 0xf8) == 0xf0) {
      length = 4;
      code = byte & 0x07;
    } else {
      return std::nullopt;
    }
    if (i + length > text.size()) return std::nullopt;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return std::nullopt;
      code = (code << 6) | (next & 0x3f);
    }
    static constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[length] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return std::nullopt;
    i += length;
    ++count;
  }
  return count;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A letter or digit: ASCII ones, and any non-ASCII character (the tokenisers decide what
// those are; a term that turns out to hold none simply matches nothing).
bool HasWordCharacter(std::string_view term) {
  for (const char c : term) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  }
  return false;
}

// Collapses runs of white space into one space and trims the ends.
std::string NormaliseSpaces(std::string_view text) {
  std::string out;
  bool pending_space = false;
  for (const char c : text) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

// 64 random bits as 16 hex digits, for the snippet markers of one search.
std::string RandomToken() {
  thread_local std::mt19937_64 rng{[] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }()};
  return fmt::format("{:016x}", rng());
}

void AppendEscaped(std::string& out, char c) {
  switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out.push_back(c);
  }
}

}  // namespace

Expected<std::vector<std::string>> ParseSearchQuery(std::string_view q) {
  const auto length = Utf8CodePoints(q);
  if (!length) return InvalidQuery("q must be UTF-8 text");
  if (*length > kMaxSearchQueryLength) {
    return InvalidQuery(fmt::format("q must be at most {} characters", kMaxSearchQueryLength));
  }
  for (const char c : q) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && !IsSpace(c)) || byte == 0x7f) return InvalidQuery("q must not contain control characters");
  }

  std::vector<std::string> terms;
  bool any_text = false;
  std::size_t i = 0;
  while (i < q.size()) {
    if (IsSpace(q[i])) {
      ++i;
      continue;
    }
    std::string_view raw;
    if (q[i] == '"') {
      const std::size_t close = q.find('"', i + 1);
      const std::size_t end = close == std::string_view::npos ? q.size() : close;
      raw = q.substr(i + 1, end - i - 1);
      i = end == q.size() ? end : end + 1;
    } else {
      std::size_t end = i;
      while (end < q.size() && !IsSpace(q[end]) && q[end] != '"') ++end;
      raw = q.substr(i, end - i);
      i = end;
    }
    std::string term = NormaliseSpaces(raw);
    if (!term.empty()) any_text = true;
    if (!HasWordCharacter(term)) continue;
    if (terms.size() == kMaxSearchTerms) {
      return InvalidQuery(fmt::format("q may hold at most {} words or phrases", kMaxSearchTerms));
    }
    terms.push_back(std::move(term));
  }
  if (!any_text) return InvalidQuery("q must not be empty");
  if (terms.empty()) return InvalidQuery("q must contain a word (letters or digits)");
  return terms;
}

std::string RenderSnippet(std::string_view raw, std::string_view open, std::string_view close) {
  std::string out;
  out.reserve(raw.size() + raw.size() / 8);
  bool marked = false;
  std::size_t i = 0;
  while (i < raw.size()) {
    if (!open.empty() && raw.substr(i, open.size()) == open) {
      if (!marked) out += "<mark>";
      marked = true;
      i += open.size();
    } else if (!close.empty() && raw.substr(i, close.size()) == close) {
      if (marked) out += "</mark>";
      marked = false;
      i += close.size();
    } else {
      AppendEscaped(out, raw[i]);
      ++i;
    }
  }
  if (marked) out += "</mark>";
  return out;
}

Task<Expected<Page<SearchHit>>> SearchService::Search(std::string_view user_id, std::string_view q,
                                                      const PageRequest& page) {
  auto terms = ParseSearchQuery(q);
  if (!terms) co_return Unexpected{std::move(terms).error()};
  store::SearchQuery query;
  query.terms = std::move(*terms);
  const std::string token = RandomToken();
  query.highlight_open = "[[" + token + "[[";
  query.highlight_close = "]]" + token + "]]";
  auto hits = co_await repo_.Search(user_id, query, page);
  if (!hits) co_return Unexpected{std::move(hits).error()};
  for (auto& hit : hits->items) hit.snippet = RenderSnippet(hit.snippet, query.highlight_open, query.highlight_close);
  co_return std::move(*hits);
}

}  // namespace chatd::chat
