#include "store/search_repository.hpp"

#include <charconv>
#include <cmath>
#include <map>
#include <utility>

#include <fmt/format.h>

#include "core/ids.hpp"
#include "store/keyset.hpp"

namespace chatd::store {

namespace {

// --- SQL -----------------------------------------------------------------------------
// Parameters: $1 the user, $2 the query text (RenderSearchTerms), then — on pages after the
// first — $3 the cursor's hit id and $4 its score, then the row limit. Every statement
// builds `hits(hit_id, conversation_id, message_id, score)` of this user only, then pages
// through it in the same way.

// SQLite: the FTS5 table is matched first (its MATCH drives the plan; bm25() is negative,
// lower is better, hence the sign), then joined to its documents and their owner.
constexpr std::string_view kSqliteHits =
    "WITH hits AS ("
    " SELECT COALESCE(d.message_id, d.conversation_id) AS hit_id, d.seq AS seq, d.conversation_id AS conversation_id,"
    "  d.message_id AS message_id, -bm25(search_fts) AS score"
    " FROM search_fts JOIN search_documents d ON d.seq = search_fts.rowid"
    " JOIN conversations c ON c.id = d.conversation_id"
    " WHERE search_fts MATCH $2 AND c.user_id = $1)"
    " SELECT h.hit_id, h.seq, h.conversation_id, h.message_id, h.score, c.title AS conversation_title, m.role,"
    "  COALESCE(m.created_at, c.created_at) AS created_at"
    " FROM hits h JOIN conversations c ON c.id = h.conversation_id LEFT JOIN messages m ON m.id = h.message_id";

// SQLite snippets, for the hits of one page only (snippet() reads the text back through
// the content view, so it is not computed for every match). $1 the query text, $2/$3 the
// markers, $4 the user, $5.. the documents.
constexpr std::string_view kSqliteSnippets =
    "SELECT search_fts.rowid AS seq, snippet(search_fts, 0, $2, $3, '…', 32) AS snippet"
    " FROM search_fts JOIN search_documents d ON d.seq = search_fts.rowid"
    " JOIN conversations c ON c.id = d.conversation_id"
    " WHERE search_fts MATCH $1 AND c.user_id = $4 AND search_fts.rowid IN (";

// PostgreSQL: messages and titles matched through their GIN indexes, each scoped to the
// user. ts_headline() runs on the page's rows only (the page is a CTE with its LIMIT), on
// the text as it was indexed: with a space after each '<' (migration 4 says why), which
// UnspaceAngles takes out of the snippet.
constexpr std::string_view kPostgresHits =
    "WITH query AS (SELECT websearch_to_tsquery('english', $2) AS q),"
    " hits AS ("
    " SELECT m.id AS hit_id, m.conversation_id AS conversation_id, m.id AS message_id,"
    "  ts_rank(m.search_vector, query.q)::float8 AS score"
    " FROM query, messages m JOIN conversations c ON c.id = m.conversation_id"
    " WHERE c.user_id = $1 AND m.search_vector @@ query.q"
    " UNION ALL"
    " SELECT c.id, c.id, NULL, ts_rank(c.title_vector, query.q)::float8"
    " FROM query, conversations c WHERE c.user_id = $1 AND c.title_vector @@ query.q),"
    " page AS (SELECT h.* FROM hits h";
constexpr std::string_view kPostgresPage =
    ")"
    " SELECT h.hit_id, h.conversation_id, h.message_id, h.score, c.title AS conversation_title, m.role,"
    "  COALESCE(m.created_at, c.created_at) AS created_at,"
    "  ts_headline('english',"
    "   replace(CASE WHEN h.message_id IS NULL THEN c.title ELSE left(m.content, 100000) END, '<', '< '),"
    "   query.q, ${}) AS snippet"
    " FROM page h JOIN conversations c ON c.id = h.conversation_id LEFT JOIN messages m ON m.id = h.message_id"
    " CROSS JOIN query ORDER BY h.score DESC, h.hit_id";

// After the cursor's hit: its current score when it is still a hit, else the cursor's.
constexpr std::string_view kAfterCursor =
    " WHERE (h.score < COALESCE((SELECT s.score FROM hits s WHERE s.hit_id = $3), $4)"
    " OR (h.score = COALESCE((SELECT s.score FROM hits s WHERE s.hit_id = $3), $4) AND h.hit_id > $3))";
constexpr std::string_view kOrderAndLimit = " ORDER BY h.score DESC, h.hit_id LIMIT ${}";

// A snippet of 12 to 30 words around the first match — a short text whole, like FTS5's
// snippet() — in ts_headline's option syntax (the markers never hold '"' or ',').
std::string HeadlineOptions(const SearchQuery& query) {
  return fmt::format("StartSel=\"{}\", StopSel=\"{}\", MaxWords=30, MinWords=12", query.highlight_open,
                     query.highlight_close);
}

// Undoes the "<" → "< " of the PostgreSQL text: every '<' of a snippet is followed by the
// space added after it (the markers hold no '<').
std::string UnspaceAngles(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    out.push_back(text[i]);
    if (text[i] == '<' && i + 1 < text.size() && text[i + 1] == ' ') ++i;
  }
  return out;
}

// --- cursor ----------------------------------------------------------------------------

struct SearchCursor {
  double score = 0;
  std::string hit_id;
};

std::string EncodeSearchCursor(const SearchHit& hit) { return EncodeCursorText(fmt::format("{}|{}", hit.score, hit.id)); }

Expected<SearchCursor> DecodeSearchCursor(std::string_view cursor) {
  auto invalid = [] { return MakeError(ErrorCode::kInvalidArgument, "invalid cursor", "cursor"); };
  const auto plain = DecodeCursorText(cursor);
  if (!plain) return invalid();
  const auto bar = plain->find('|');
  if (bar == std::string::npos) return invalid();
  SearchCursor decoded;
  const char* first = plain->data();
  const char* last = first + bar;
  const auto [end, ec] = std::from_chars(first, last, decoded.score);
  if (ec != std::errc() || end != last || !std::isfinite(decoded.score)) return invalid();
  decoded.hit_id = plain->substr(bar + 1);
  if (!LooksLikeUuid(decoded.hit_id)) return invalid();
  return decoded;
}

// --- rows ------------------------------------------------------------------------------

double ReadScore(const Result& rows, std::size_t i) {
  const std::string text = rows.Text(i, "score");
  double score = 0;
  std::from_chars(text.data(), text.data() + text.size(), score);
  return score;
}

SearchHit ReadHit(const Result& rows, std::size_t i) {
  SearchHit hit;
  hit.id = rows.Text(i, "hit_id");
  hit.conversation_id = rows.Text(i, "conversation_id");
  hit.message_id = rows.Cell(i, "message_id");
  hit.role = rows.Cell(i, "role");
  hit.conversation_title = rows.Text(i, "conversation_title");
  hit.created_at = rows.Text(i, "created_at");
  hit.score = ReadScore(rows, i);
  return hit;
}

// The page out of rows fetched with one row past the limit.
Page<SearchHit> ReadPage(const Result& rows, std::int64_t limit) {
  Page<SearchHit> page;
  for (std::size_t i = 0; i < rows.size() && static_cast<std::int64_t>(i) < limit; ++i) {
    page.items.push_back(ReadHit(rows, i));
  }
  if (static_cast<std::int64_t>(rows.size()) > limit && !page.items.empty()) {
    page.next_cursor = EncodeSearchCursor(page.items.back());
  }
  return page;
}

// The shared tail of the page query: the cursor's condition, the order and the limit.
Expected<std::int64_t> AppendSearchPage(std::string& sql, Params& params, const PageRequest& page) {
  if (!page.cursor.empty()) {
    auto cursor = DecodeSearchCursor(page.cursor);
    if (!cursor) return Unexpected{std::move(cursor).error()};
    params.emplace_back(std::move(cursor->hit_id));  // $3
    params.emplace_back(cursor->score);              // $4
    sql += kAfterCursor;
  }
  const std::int64_t limit = KeysetPageLimit(page);
  params.emplace_back(limit + 1);
  sql += fmt::format(kOrderAndLimit, params.size());
  return limit;
}

}  // namespace

std::string RenderSearchTerms(const std::vector<std::string>& terms) {
  std::string out;
  for (const auto& term : terms) {
    if (!out.empty()) out.push_back(' ');
    out.append("\"").append(term).append("\"");
  }
  return out;
}

Task<Expected<Page<SearchHit>>> SearchRepository::Search(std::string_view user_id, const SearchQuery& query,
                                                         const PageRequest& page) {
  const std::string match = RenderSearchTerms(query.terms);
  Params params{std::string(user_id), match};
  const bool sqlite = db_.dialect() == Dialect::kSqlite;
  std::string sql(sqlite ? kSqliteHits : kPostgresHits);
  auto limit = AppendSearchPage(sql, params, page);
  if (!limit) co_return Unexpected{std::move(limit).error()};
  if (!sqlite) {
    params.emplace_back(HeadlineOptions(query));
    sql += fmt::format(kPostgresPage, params.size());
  }
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  Page<SearchHit> out = ReadPage(*rows, *limit);
  if (!sqlite) {
    for (std::size_t i = 0; i < out.items.size(); ++i) out.items[i].snippet = UnspaceAngles(rows->Text(i, "snippet"));
    co_return out;
  }
  if (out.items.empty()) co_return out;

  // SQLite: the snippets of this page's documents.
  Params snippet_params{match, query.highlight_open, query.highlight_close, std::string(user_id)};
  std::string snippet_sql(kSqliteSnippets);
  std::map<std::int64_t, std::size_t> by_seq;  // document → index in out.items
  for (std::size_t i = 0; i < out.items.size(); ++i) {
    const std::int64_t seq = rows->Int(i, "seq");
    by_seq.emplace(seq, i);
    snippet_params.emplace_back(seq);
    if (i > 0) snippet_sql += ", ";
    snippet_sql += fmt::format("${}", snippet_params.size());
  }
  snippet_sql += ")";
  auto snippets = co_await db_.Execute(snippet_sql, std::move(snippet_params));
  if (!snippets) co_return Unexpected{std::move(snippets).error()};
  // A document whose text changed between the two statements may no longer match: its
  // hit keeps an empty snippet.
  for (std::size_t i = 0; i < snippets->size(); ++i) {
    const auto found = by_seq.find(snippets->Int(i, "seq"));
    if (found != by_seq.end()) out.items[found->second].snippet = snippets->Text(i, "snippet");
  }
  co_return out;
}

}  // namespace chatd::store
