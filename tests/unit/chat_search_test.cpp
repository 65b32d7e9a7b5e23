// Search: the query parser and snippet renderer (pure), and SearchService on every
// backend (SQLite in memory; PostgreSQL when CHATD_TEST_DATABASE_URL is set) — what is
// found, for whom, after edits and deletions, page by page. On SQLite the FTS5 index is
// also checked against its content after every test, and the migration's backfill is run.
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "chat/conversation_service.hpp"
#include "chat/message_service.hpp"
#include "chat/search_service.hpp"
#include "store/migrations.hpp"
#include "store/search_repository.hpp"

namespace chatd::chat {
namespace {

using namespace std::chrono_literals;
using chatd::testing::Backend;
using Terms = std::vector<std::string>;

// --- ParseSearchQuery -------------------------------------------------------------------

Terms Parse(std::string_view q) {
  auto terms = ParseSearchQuery(q);
  EXPECT_TRUE(terms) << q << ": " << terms.error().message;
  return terms ? *terms : Terms{};
}

void ExpectInvalid(std::string_view q) {
  auto terms = ParseSearchQuery(q);
  ASSERT_FALSE(terms) << "accepted: " << q;
  EXPECT_EQ(terms.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(terms.error().param, "q");
}

TEST(ParseSearchQueryTest, WordsAndPhrases) {
  EXPECT_EQ(Parse("okapi"), Terms{"okapi"});
  EXPECT_EQ(Parse("  okapi \t forest\n"), (Terms{"okapi", "forest"}));
  EXPECT_EQ(Parse("\"the  quick\"   fox"), (Terms{"the quick", "fox"}));
  EXPECT_EQ(Parse("a\"b c\"d"), (Terms{"a", "b c", "d"}));
  EXPECT_EQ(Parse("\"unclosed phrase  "), Terms{"unclosed phrase"});
  EXPECT_EQ(Parse("Café ünïcode"), (Terms{"Café", "ünïcode"}));
}

TEST(ParseSearchQueryTest, OperatorsStayWordsAndLonePunctuationIsDropped) {
  EXPECT_EQ(Parse("okapi AND NOT (giraffe"), (Terms{"okapi", "AND", "NOT", "(giraffe"}));
  EXPECT_EQ(Parse("NEAR(a b) col:x y* -z ^w"), (Terms{"NEAR(a", "b)", "col:x", "y*", "-z", "^w"}));
  EXPECT_EQ(Parse("okapi - * ! \"\" &"), Terms{"okapi"});
}

TEST(ParseSearchQueryTest, RefusesWhatCannotBeSearched) {
  ExpectInvalid("");
  ExpectInvalid("   \t");
  ExpectInvalid("\"\"");
  ExpectInvalid("!!! * -");
  ExpectInvalid(std::string(201, 'x'));
  ExpectInvalid(std::string("okapi\0", 6));
  ExpectInvalid("okapi\x01");
  ExpectInvalid("okapi\x7f");
  ExpectInvalid("\xff\xfe");            // not UTF-8
  ExpectInvalid("\xc0\xaf");            // overlong '/'
  ExpectInvalid("\xed\xa0\x80");        // a surrogate
  ExpectInvalid("caf\xc3");             // cut short
  ExpectInvalid("\xf4\x90\x80\x80");    // past U+10FFFF
  std::string seventeen;
  for (int i = 0; i < 17; ++i) seventeen += "w ";
  ExpectInvalid(seventeen);
}

TEST(ParseSearchQueryTest, LimitsHold) {
  std::string longest;
  for (std::size_t i = 0; i < kMaxSearchQueryLength; ++i) longest += "é";  // 200 characters, 400 bytes
  EXPECT_EQ(Parse(longest).size(), 1u);
  std::string sixteen;
  for (std::size_t i = 0; i < kMaxSearchTerms; ++i) sixteen += "w ";
  EXPECT_EQ(Parse(sixteen).size(), kMaxSearchTerms);
}

TEST(RenderSearchTermsTest, QuotesEveryTerm) {
  EXPECT_EQ(store::RenderSearchTerms({"okapi", "AND", "the quick"}), "\"okapi\" \"AND\" \"the quick\"");
}

// --- RenderSnippet ----------------------------------------------------------------------

TEST(RenderSnippetTest, EscapesTextAndMarksMatches) {
  EXPECT_EQ(RenderSnippet("a <b> & [[o]]x[[c]] \"q\" 'y'", "[[o]]", "[[c]]"),
            "a &lt;b&gt; &amp; <mark>x</mark> &quot;q&quot; &#39;y&#39;");
}

TEST(RenderSnippetTest, UnpairedMarkersAreBalancedOrDropped) {
  EXPECT_EQ(RenderSnippet("[[c]]a[[o]]b", "[[o]]", "[[c]]"), "a<mark>b</mark>");
  EXPECT_EQ(RenderSnippet("[[o]]a[[o]]b[[c]][[c]]", "[[o]]", "[[c]]"), "<mark>ab</mark>");
  EXPECT_EQ(RenderSnippet("<mark>x</mark>", "[[o]]", "[[c]]"), "&lt;mark&gt;x&lt;/mark&gt;");
}

// --- SearchService ----------------------------------------------------------------------

class SearchServiceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    conversations_ = std::make_unique<ConversationService>(database_.db(), clock_);
    messages_ = std::make_unique<MessageService>(database_.db(), clock_);
    search_ = std::make_unique<SearchService>(database_.db());
    alice_ = database_.InsertUser("alice@example.com", clock_.Now());
    bob_ = database_.InsertUser("bob@example.com", clock_.Now());
  }

  void TearDown() override {
    if (conversations_ && GetParam() == Backend::kSqlite) ExpectIndexMatchesContent();
    database_.Drain();
  }

  bool IsSqlite() const { return GetParam() == Backend::kSqlite; }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  std::string NewConversation(const std::string& user, std::string title = {}) {
    chat::NewConversation request;
    request.title = std::move(title);
    auto created = Await(conversations_->Create(user, request));
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->id : std::string();
  }

  Message Add(const std::string& user, const std::string& conversation, std::string content,
              std::string role = "user") {
    clock_.Advance(1ms);
    NewMessage request;
    request.role = std::move(role);
    request.content = std::move(content);
    auto added = Await(messages_->Add(user, conversation, request));
    EXPECT_TRUE(added) << added.error().message;
    return added ? *added : Message{};
  }

  Page<SearchHit> Search(const std::string& user, std::string_view q, std::size_t limit = 100,
                         std::string cursor = {}) {
    auto hits = Await(search_->Search(user, q, PageRequest{limit, std::move(cursor)}));
    EXPECT_TRUE(hits) << hits.error().message;
    return hits ? *hits : Page<SearchHit>{};
  }

  std::vector<std::string> Ids(const std::string& user, std::string_view q) {
    std::vector<std::string> ids;
    for (const auto& hit : Search(user, q).items) ids.push_back(hit.id);
    return ids;
  }

  // FTS5's own check that the index holds exactly what its content (the view) says.
  void ExpectIndexMatchesContent() {
    auto checked = Await(database_.db().Execute("INSERT INTO search_fts(search_fts, rank) VALUES ('integrity-check', 1)"));
    EXPECT_TRUE(checked) << checked.error().message;
    auto orphans = Await(database_.db().Execute(
        "SELECT COUNT(*) AS n FROM search_documents d LEFT JOIN conversations c ON c.id = d.conversation_id"
        " LEFT JOIN messages m ON m.id = d.message_id"
        " WHERE c.id IS NULL OR (d.message_id IS NOT NULL AND m.id IS NULL)"));
    ASSERT_TRUE(orphans) << orphans.error().message;
    EXPECT_EQ(orphans->Int(0, "n"), 0);
  }

  chatd::testing::TestDatabase database_;
  ManualClock clock_;
  std::unique_ptr<ConversationService> conversations_;
  std::unique_ptr<MessageService> messages_;
  std::unique_ptr<SearchService> search_;
  std::string alice_;
  std::string bob_;
};

TEST_P(SearchServiceTest, FindsMessagesAndTitlesOfTheCallerOnly) {
  const std::string mine = NewConversation(alice_, "Heron watching");
  const Message message = Add(alice_, mine, "The heron stood in the reeds");
  const std::string bobs = NewConversation(bob_, "heron facts");
  Add(bob_, bobs, "bob's heron");

  const auto hits = Search(alice_, "herons").items;
  ASSERT_EQ(hits.size(), 2u);
  std::set<std::string> ids;
  for (const auto& hit : hits) {
    ids.insert(hit.id);
    EXPECT_EQ(hit.conversation_id, mine);
    EXPECT_EQ(hit.conversation_title, "Heron watching");
    EXPECT_GT(hit.score, 0);
  }
  EXPECT_EQ(ids, (std::set<std::string>{mine, message.id}));
  const auto& title = hits[0].message_id ? hits[1] : hits[0];
  const auto& text = hits[0].message_id ? hits[0] : hits[1];
  EXPECT_FALSE(title.role);
  EXPECT_EQ(title.snippet, "<mark>Heron</mark> watching");
  EXPECT_EQ(text.role, "user");
  EXPECT_EQ(text.created_at, message.created_at);
  EXPECT_EQ(text.snippet, "The <mark>heron</mark> stood in the reeds");

  EXPECT_EQ(Search(bob_, "heron").items.size(), 2u);
  EXPECT_TRUE(Search(database_.InsertUser("carol@example.com", clock_.Now()), "heron").items.empty());
}

TEST_P(SearchServiceTest, FollowsGrowingAnswersRenamesAndDeletions) {
  const std::string conversation = NewConversation(alice_, "first title");
  const Message question = Add(alice_, conversation, "question");
  auto started = Await(messages_->StartAssistantMessage(alice_, conversation, question.id, std::string("demo")));
  ASSERT_TRUE(started) << started.error().message;
  MessageProgress progress;
  progress.status = "streaming";
  progress.content = "an early draft mentioning ospreys";
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, started->id, progress)));
  EXPECT_TRUE(Ids(alice_, "osprey").empty()) << "an answer being generated is found once it ends";
  progress.status = "complete";
  progress.content = "the final answer is about kestrels";
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, started->id, progress)));
  EXPECT_TRUE(Ids(alice_, "osprey").empty());
  EXPECT_EQ(Ids(alice_, "kestrel"), std::vector<std::string>{started->id});

  ConversationChange rename;
  rename.title = "second title";
  ASSERT_TRUE(Await(conversations_->Update(alice_, conversation, rename)));
  EXPECT_TRUE(Ids(alice_, "first").empty());
  EXPECT_EQ(Ids(alice_, "second"), std::vector<std::string>{conversation});

  ASSERT_TRUE(Await(conversations_->Delete(alice_, conversation)));
  EXPECT_TRUE(Ids(alice_, "kestrel").empty());
  EXPECT_TRUE(Ids(alice_, "question").empty());
  EXPECT_TRUE(Ids(alice_, "second").empty());
}

TEST_P(SearchServiceTest, PagesCoverEveryHitOnceInRankOrder) {
  const std::string conversation = NewConversation(alice_, "puffin");
  for (const char* text : {"puffin", "puffin puffin", "a puffin on a cliff above the sea", "puffin again",
                           "puffin puffin puffin", "no match here", "one more puffin"}) {
    Add(alice_, conversation, text);
  }
  const auto all = Search(alice_, "puffin").items;
  ASSERT_EQ(all.size(), 7u);  // six messages and the title
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i - 1].score, all[i].score);
  for (const std::size_t limit : {1u, 2u, 3u, 6u}) {
    std::vector<std::string> paged;
    std::string cursor;
    do {
      const auto page = Search(alice_, "puffin", limit, cursor);
      ASSERT_LE(page.items.size(), limit);
      for (const auto& hit : page.items) paged.push_back(hit.id);
      cursor = page.next_cursor;
    } while (!cursor.empty());
    std::vector<std::string> want;
    for (const auto& hit : all) want.push_back(hit.id);
    EXPECT_EQ(paged, want) << "limit " << limit;
  }
}

TEST_P(SearchServiceTest, RefusesBadQueriesAndCursors) {
  for (const std::string_view q : {"", "!!!", "a\x02"}) {
    auto hits = Await(search_->Search(alice_, q, PageRequest{}));
    ASSERT_FALSE(hits);
    EXPECT_EQ(hits.error().param, "q");
  }
  for (const std::string cursor : {"x", "bm90LWEtY3Vyc29y", "bmFufDAxOTAwMDAwLTAwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMA"}) {
    auto hits = Await(search_->Search(alice_, "okapi", PageRequest{10, cursor}));
    ASSERT_FALSE(hits) << cursor;
    EXPECT_EQ(hits.error().param, "cursor");
  }
}

// Migration 4 indexes what existed before it: run its backfill over rows the index does
// not know (emptied first), and search finds them again.
TEST_P(SearchServiceTest, MigrationBackfillIndexesExistingRows) {
  if (!IsSqlite()) GTEST_SKIP() << "PostgreSQL's generated columns fill themselves";
  const std::string conversation = NewConversation(alice_, "Albatross log");
  const Message message = Add(alice_, conversation, "an albatross glides");
  ASSERT_TRUE(Await(database_.db().Execute("INSERT INTO search_fts(search_fts) VALUES ('delete-all')")));
  ASSERT_TRUE(Await(database_.db().Execute("DELETE FROM search_documents")));
  EXPECT_TRUE(Ids(alice_, "albatross").empty());

  const std::string_view sql = store::SqliteMigrations()[3].sql;
  const auto backfill = sql.find("-- Backfill:");
  ASSERT_NE(backfill, std::string_view::npos);
  std::string_view rest = sql.substr(sql.find('\n', backfill) + 1);
  int statements = 0;
  while (rest.find(';') != std::string_view::npos) {
    const auto end = rest.find(';');
    auto ran = Await(database_.db().Execute(rest.substr(0, end)));
    ASSERT_TRUE(ran) << ran.error().message;
    ++statements;
    rest.remove_prefix(end + 1);
  }
  EXPECT_EQ(statements, 3);
  const auto ids = Ids(alice_, "albatross");
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), (std::set<std::string>{conversation, message.id}));
}

INSTANTIATE_TEST_SUITE_P(Backends, SearchServiceTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::chat
