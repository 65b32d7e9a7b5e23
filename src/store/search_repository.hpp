// The SQL behind search: full-text search over a user's message contents and conversation
// titles, best first, with the matched words marked in a snippet of each hit. The rules
// (what a query may hold, how snippets are made safe to show) are chat::SearchService's.
//
// Both dialects index the same text the same way — English stemming, case folded, the
// first 100 000 characters of a message — so a query finds the same hits on both:
//   SQLite      FTS5 table search_fts (porter + unicode61) over search_documents, one row
//               per message and per conversation title (migration 4); bm25() ranks.
//   PostgreSQL  generated tsvector columns messages.search_vector and
//               conversations.title_vector with GIN indexes; ts_rank() ranks,
//               ts_headline() makes snippets.
// Scores are comparable within one search only (bm25 depends on the whole index).
//
// Isolation lives in the SQL, as everywhere in store/: the hits are joined to
// conversations with `user_id = $1`, so another user's text never matches. A message
// that is deleted (with its conversation) leaves the index in the same statement.
//
// Pagination is a keyset over (score DESC, hit id): the cursor names the last hit of the
// page and its score. The next page starts after that hit's *current* score, looked up in
// the same statement: new text anywhere shifts every bm25 score (IDF, average length), so
// a remembered score would repeat or skip whole pages, while the hit's own place keeps
// them right unless the change reorders the hits themselves. Only when that hit is gone
// does the cursor's score stand in. (ts_rank depends on the text alone: no shift there.)
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"

namespace chatd::store {

/// What a message contributes to the index: its first this many characters.
inline constexpr std::size_t kSearchableMessageChars = 100'000;

struct SearchQuery {
  /// Words or phrases, every one required (AND); a phrase's words must be adjacent. None
  /// may contain '"' nor be empty: the service tokenises the user's text into these.
  std::vector<std::string> terms;
  /// Put around each matched word in snippets. The service picks strings the indexed
  /// text cannot contain by chance.
  std::string highlight_open;
  std::string highlight_close;
};

struct SearchHit {
  std::string id;                         // the message's id, or the conversation's for a title
  std::string conversation_id;
  std::optional<std::string> message_id;  // nullopt: the conversation's title matched
  std::optional<std::string> role;        // the message's role; nullopt for a title
  std::string conversation_title;
  std::string created_at;                 // the message's (or, for a title, the conversation's)
  double score = 0;                       // higher is better
  std::string snippet;                    // raw text around the matches, with the markers
};

class SearchRepository {
 public:
  explicit SearchRepository(Database& database) : db_(database) {}

  /// The user's hits for `query`, best first (score, then id), `page.limit` at a time (20
  /// when 0, at most 1000). A cursor that does not decode is kInvalidArgument "cursor".
  Task<Expected<Page<SearchHit>>> Search(std::string_view user_id, const SearchQuery& query,
                                         const PageRequest& page);

 private:
  Database& db_;
};

/// The query text both dialects are given: every term in double quotes, separated by
/// spaces — an FTS5 string of phrases (implicitly ANDed, operators inside quotes are
/// plain words) and a websearch_to_tsquery() string of phrases (likewise).
std::string RenderSearchTerms(const std::vector<std::string>& terms);

}  // namespace chatd::store
