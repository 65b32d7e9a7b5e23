// Search over a user's own conversations: the words of their messages and the titles of
// their conversations, best match first, each hit with a snippet that marks the matches.
//
// What a user types is never handed to a query language as it is. ParseSearchQuery cuts
// it into terms — words, and "quoted phrases" — that store/ quotes again for its dialect,
// so FTS5 or tsquery operators in the text (AND, OR, NOT, NEAR, *, ^, -, :, parentheses)
// are plain words and a query cannot fail to parse. Every term must match (AND); words
// are stemmed (English) and case-folded, so "Deploying" finds "deploy".
//
// Snippets are HTML-safe: the text is escaped (& < > " ') and the matches are wrapped in
// <mark>…</mark>, the only markup a snippet can hold. The store marks matches with
// strings drawn at random for each search, so text that imitates a marker is just text.
//
// Like the other chat services: callers pass the user id, and store/ scopes every query
// by it in the SQL. Methods run on the calling I/O thread's coroutine and never block
// it. Errors: kInvalidArgument with param "q" or "cursor", kUnavailable (database down).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"
#include "store/search_repository.hpp"

namespace chatd::chat {

inline constexpr std::size_t kMaxSearchQueryLength = 200;  // characters (code points)
inline constexpr std::size_t kMaxSearchTerms = 16;

/// A hit as the store finds it, with `snippet` rendered by RenderSnippet.
using SearchHit = store::SearchHit;

/// The terms of a user's query: words separated by white space, and phrases in double
/// quotes (an unclosed quote runs to the end). Terms without a letter or digit (lone
/// punctuation) are dropped. kInvalidArgument with param "q" when the text is empty, not
/// UTF-8, longer than kMaxSearchQueryLength, holds control characters, has no word, or
/// has more than kMaxSearchTerms terms.
Expected<std::vector<std::string>> ParseSearchQuery(std::string_view q);

/// `raw` (text with matches between `open` and `close`) as HTML: the text escaped, each
/// match in <mark>…</mark>. Markers are balanced (a stray close is dropped, an open one
/// closed at the end); nothing else in `raw` can become markup.
std::string RenderSnippet(std::string_view raw, std::string_view open, std::string_view close);

class SearchService {
 public:
  explicit SearchService(store::Database& database) : repo_(database) {}

  /// The user's hits for `q`, best first, paginated (limit 1..100 is the caller's rule).
  Task<Expected<Page<SearchHit>>> Search(std::string_view user_id, std::string_view q, const PageRequest& page);

 private:
  store::SearchRepository repo_;
};

}  // namespace chatd::chat
