// ConversationService on every backend (see accounts_test_database.hpp: SQLite in memory,
// PostgreSQL when CHATD_TEST_DATABASE_URL is set), with a manual clock.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "chat/conversation_service.hpp"
#include "core/ids.hpp"
#include "store/accounts_repository.hpp"

namespace chatd::chat {
namespace {

using namespace std::chrono_literals;
using chatd::testing::Backend;

class ConversationServiceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    service_ = std::make_unique<ConversationService>(database_.db(), clock_);
    alice_ = AddUser("alice@example.com");
    bob_ = AddUser("bob@example.com");
  }

  void TearDown() override { database_.Drain(); }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  std::string AddUser(std::string_view email) { return database_.InsertUser(email, clock_.Now()); }

  Conversation Create(const std::string& user_id, NewConversation request = {}) {
    auto created = Await(service_->Create(user_id, request));
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : Conversation{};
  }

  Conversation Titled(const std::string& user_id, std::string title) {
    NewConversation request;
    request.title = std::move(title);
    return Create(user_id, request);
  }

  // Every page of a list, following next_cursor.
  std::vector<Conversation> ListAll(const std::string& user_id, ConversationFilter filter = {}, std::size_t limit = 2) {
    std::vector<Conversation> all;
    PageRequest page{limit, ""};
    for (int pages = 0; pages < 100; ++pages) {
      auto listed = Await(service_->List(user_id, filter, page));
      EXPECT_TRUE(listed) << listed.error().message;
      if (!listed) break;
      EXPECT_LE(listed->items.size(), limit);
      all.insert(all.end(), listed->items.begin(), listed->items.end());
      if (listed->next_cursor.empty()) break;
      page.cursor = listed->next_cursor;
    }
    return all;
  }

  static std::vector<std::string> Ids(const std::vector<Conversation>& conversations) {
    std::vector<std::string> ids;
    for (const auto& c : conversations) ids.push_back(c.id);
    return ids;
  }

  static void ExpectError(const Error& error, ErrorCode code, std::string_view param = {}) {
    EXPECT_EQ(error.code, code) << error.message;
    EXPECT_EQ(error.param, param) << error.message;
  }

  chatd::testing::TestDatabase database_;
  ManualClock clock_;
  std::unique_ptr<ConversationService> service_;
  std::string alice_;
  std::string bob_;
};

TEST_P(ConversationServiceTest, CreateWithDefaultsThenGet) {
  const Conversation created = Create(alice_);
  EXPECT_TRUE(LooksLikeUuid(created.id));
  EXPECT_EQ(created.user_id, alice_);
  EXPECT_EQ(created.title, "");
  EXPECT_EQ(created.model, "");
  EXPECT_FALSE(created.system_prompt.has_value());
  EXPECT_EQ(created.params, "{}");
  EXPECT_FALSE(created.pinned);
  EXPECT_FALSE(created.archived);
  EXPECT_EQ(created.created_at, FormatRfc3339(clock_.Now()));
  EXPECT_EQ(created.updated_at, created.created_at);

  auto got = Await(service_->Get(alice_, created.id));
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->id, created.id);
  EXPECT_EQ(got->title, "");
  EXPECT_FALSE(got->system_prompt.has_value());
  EXPECT_EQ(got->params, "{}");
  EXPECT_FALSE(got->pinned);
  EXPECT_FALSE(got->archived);
  EXPECT_EQ(got->created_at, created.created_at);
  EXPECT_EQ(got->updated_at, created.updated_at);
}

TEST_P(ConversationServiceTest, CreateStoresEveryField) {
  NewConversation request;
  request.title = "Grüße — a title";
  request.model = "gpt-4o-mini";
  request.system_prompt = "";  // an empty prompt is a prompt, not "none"
  request.params = R"({"temperature":0.7,"top_p":1,"max_tokens":1000000})";
  const Conversation created = Create(alice_, request);
  auto got = Await(service_->Get(alice_, created.id));
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->title, request.title);
  EXPECT_EQ(got->model, request.model);
  ASSERT_TRUE(got->system_prompt.has_value());
  EXPECT_EQ(*got->system_prompt, "");
  EXPECT_EQ(got->params, request.params);  // verbatim
}

TEST_P(ConversationServiceTest, CreateValidates) {
  const auto fails = [&](NewConversation request, std::string_view param) {
    auto created = Await(service_->Create(alice_, request));
    ASSERT_FALSE(created) << "accepted; want 400 " << param;
    ExpectError(created.error(), ErrorCode::kInvalidArgument, param);
  };
  NewConversation request;
  request.title = std::string(201, 'x');
  fails(request, "title");
  request = {};
  request.model = std::string(101, 'm');
  fails(request, "model");
  request = {};
  request.system_prompt = std::string(32 * 1024 + 1, 'p');
  fails(request, "system_prompt");
  for (const auto& [params, param] : std::vector<std::pair<std::string, std::string>>{
           {"[]", "params"},
           {"5", "params"},
           {"null", "params"},
           {"{", "params"},
           {R"({"temperature":2.01})", "params.temperature"},
           {R"({"temperature":-1})", "params.temperature"},
           {R"({"temperature":"1"})", "params.temperature"},
           {R"({"top_p":1.5})", "params.top_p"},
           {R"({"top_p":true})", "params.top_p"},
           {R"({"max_tokens":0})", "params.max_tokens"},
           {R"({"max_tokens":1000001})", "params.max_tokens"},
           {R"({"max_tokens":1.5})", "params.max_tokens"},
           {R"({"max_tokens":"5"})", "params.max_tokens"},
           {R"({"top_p":0.5,"top_p":7})", "params.top_p"},
           {R"({"seed":1})", "params.seed"},
       }) {
    SCOPED_TRACE(params);
    request = {};
    request.params = params;
    fails(request, param);
  }
  // Limits are characters, not bytes: 200 two-byte characters are a valid title.
  std::string title;
  for (int i = 0; i < 200; ++i) title += "é";
  request = {};
  request.title = title;
  request.system_prompt = std::string(32 * 1024, 'p');
  request.params = R"({"temperature":2,"top_p":0,"max_tokens":1})";
  EXPECT_EQ(Create(alice_, request).title, title);

  auto listed = Await(service_->List(alice_, {}, {}));
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->items.size(), 1u) << "a refused conversation was stored";
}

TEST_P(ConversationServiceTest, ListIsNewestUpdatedFirstAcrossPages) {
  std::vector<std::string> created;
  for (int i = 0; i < 5; ++i) {
    created.push_back(Titled(alice_, "c" + std::to_string(i)).id);
    clock_.Advance(1ms);
  }
  std::reverse(created.begin(), created.end());
  EXPECT_EQ(Ids(ListAll(alice_, {}, 2)), created);
  EXPECT_EQ(Ids(ListAll(alice_, {}, 1)), created);
  EXPECT_EQ(Ids(ListAll(alice_, {}, 5)), created);

  // Updating the oldest moves it to the front.
  clock_.Advance(1ms);
  ConversationChange change;
  change.title = "renamed";
  auto updated = Await(service_->Update(alice_, created.back(), change));
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->updated_at, FormatRfc3339(clock_.Now()));
  EXPECT_NE(updated->updated_at, updated->created_at);
  std::rotate(created.rbegin(), created.rbegin() + 1, created.rend());
  EXPECT_EQ(Ids(ListAll(alice_, {}, 2)), created);
}

TEST_P(ConversationServiceTest, ListPagesThroughEqualTimestampsByIdDescending) {
  std::vector<std::string> created;
  for (int i = 0; i < 5; ++i) created.push_back(Create(alice_).id);  // same millisecond
  std::sort(created.rbegin(), created.rend());
  EXPECT_EQ(Ids(ListAll(alice_, {}, 2)), created);
}

TEST_P(ConversationServiceTest, ListFilters) {
  const Conversation plain = Titled(alice_, "Trip to Paris");
  clock_.Advance(1ms);
  const Conversation percent = Titled(alice_, "100% done_now");
  clock_.Advance(1ms);
  const Conversation pinned = Titled(alice_, "pinned PARIS notes");
  clock_.Advance(1ms);
  const Conversation archived = Titled(alice_, "old paris");
  ConversationChange pin;
  pin.pinned = true;
  ASSERT_TRUE(Await(service_->Update(alice_, pinned.id, pin)));
  ConversationChange archive;
  archive.archived = true;
  ASSERT_TRUE(Await(service_->Update(alice_, archived.id, archive)));

  // Archived ones are hidden unless asked for.
  EXPECT_EQ(Ids(ListAll(alice_)), (std::vector<std::string>{pinned.id, percent.id, plain.id}));
  ConversationFilter filter;
  filter.archived = true;
  EXPECT_EQ(Ids(ListAll(alice_, filter)), std::vector<std::string>{archived.id});

  filter = {};
  filter.title_contains = "paris";
  EXPECT_EQ(Ids(ListAll(alice_, filter)), (std::vector<std::string>{pinned.id, plain.id}));
  filter.title_contains = "PaRiS";
  EXPECT_EQ(Ids(ListAll(alice_, filter)), (std::vector<std::string>{pinned.id, plain.id}));
  filter.archived = true;
  EXPECT_EQ(Ids(ListAll(alice_, filter)), std::vector<std::string>{archived.id});

  // % and _ are literal.
  filter = {};
  filter.title_contains = "%";
  EXPECT_EQ(Ids(ListAll(alice_, filter)), std::vector<std::string>{percent.id});
  filter.title_contains = "e_n";
  EXPECT_EQ(Ids(ListAll(alice_, filter)), std::vector<std::string>{percent.id});
  filter.title_contains = "p_r";
  EXPECT_TRUE(ListAll(alice_, filter).empty());

  filter = {};
  filter.pinned = true;
  EXPECT_EQ(Ids(ListAll(alice_, filter)), std::vector<std::string>{pinned.id});
  filter.pinned = false;
  EXPECT_EQ(Ids(ListAll(alice_, filter)), (std::vector<std::string>{percent.id, plain.id}));
}

TEST_P(ConversationServiceTest, ListRefusesBadCursorAndLongQuery) {
  Create(alice_);
  for (const std::string cursor : {"not base64!", "AAAA", "MjAyNi0xMy0wMVQwMDowMDowMC4wMDBafGlk"}) {
    SCOPED_TRACE(cursor);
    auto listed = Await(service_->List(alice_, {}, PageRequest{20, cursor}));
    ASSERT_FALSE(listed);
    ExpectError(listed.error(), ErrorCode::kInvalidArgument, "cursor");
  }
  ConversationFilter filter;
  filter.title_contains = std::string(201, 'q');
  auto listed = Await(service_->List(alice_, filter, {}));
  ASSERT_FALSE(listed);
  ExpectError(listed.error(), ErrorCode::kInvalidArgument, "q");
}

TEST_P(ConversationServiceTest, UpdateChangesOnlyWhatIsSent) {
  NewConversation request;
  request.title = "first";
  request.model = "m1";
  request.system_prompt = "be brief";
  request.params = R"({"temperature":1})";
  const Conversation created = Create(alice_, request);
  clock_.Advance(5ms);

  ConversationChange change;
  change.pinned = true;
  auto updated = Await(service_->Update(alice_, created.id, change));
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_TRUE(updated->pinned);
  EXPECT_FALSE(updated->archived);
  EXPECT_EQ(updated->title, "first");
  EXPECT_EQ(updated->model, "m1");
  EXPECT_EQ(updated->system_prompt, std::optional<std::string>("be brief"));
  EXPECT_EQ(updated->params, R"({"temperature":1})");
  EXPECT_EQ(updated->created_at, created.created_at);
  EXPECT_EQ(updated->updated_at, FormatRfc3339(clock_.Now()));

  change = {};
  change.title = "second";
  change.model = "";
  change.system_prompt.emplace(std::nullopt);  // clear
  change.params = R"({"max_tokens":64})";
  change.archived = true;
  change.pinned = false;
  updated = Await(service_->Update(alice_, created.id, change));
  ASSERT_TRUE(updated) << updated.error().message;
  auto got = Await(service_->Get(alice_, created.id));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->title, "second");
  EXPECT_EQ(got->model, "");
  EXPECT_FALSE(got->system_prompt.has_value());
  EXPECT_EQ(got->params, R"({"max_tokens":64})");
  EXPECT_TRUE(got->archived);
  EXPECT_FALSE(got->pinned);

  change = {};
  change.params = R"({"top_p":2})";
  updated = Await(service_->Update(alice_, created.id, change));
  ASSERT_FALSE(updated);
  ExpectError(updated.error(), ErrorCode::kInvalidArgument, "params.top_p");
  change = {};
  change.title = std::string(201, 't');
  updated = Await(service_->Update(alice_, created.id, change));
  ASSERT_FALSE(updated);
  ExpectError(updated.error(), ErrorCode::kInvalidArgument, "title");
}

TEST_P(ConversationServiceTest, DeleteTakesTheMessagesWithIt) {
  const Conversation doomed = Create(alice_);
  const Conversation kept = Create(alice_);
  for (const auto& id : {doomed.id, kept.id}) {
    store::Params params{NewUuidV7(), id};
    auto inserted = Await(database_.db().Execute(
        "INSERT INTO messages (id, conversation_id, role, content) VALUES ($1, $2, 'user', 'hi')", std::move(params)));
    ASSERT_TRUE(inserted) << inserted.error().message;
  }
  ASSERT_TRUE(Await(service_->Delete(alice_, doomed.id)));

  auto got = Await(service_->Get(alice_, doomed.id));
  ASSERT_FALSE(got);
  ExpectError(got.error(), ErrorCode::kNotFound);
  auto again = Await(service_->Delete(alice_, doomed.id));
  ASSERT_FALSE(again);
  ExpectError(again.error(), ErrorCode::kNotFound);

  auto counted = Await(database_.db().Execute("SELECT conversation_id FROM messages ORDER BY conversation_id"));
  ASSERT_TRUE(counted) << counted.error().message;
  ASSERT_EQ(counted->size(), 1u);
  EXPECT_EQ(counted->Text(0, "conversation_id"), kept.id);
  EXPECT_TRUE(Await(service_->Get(alice_, kept.id)));
}

// Someone else's id answers exactly like an id that does not exist, for every method,
// and changes nothing.
TEST_P(ConversationServiceTest, OtherUsersConversationsAreNotFound) {
  NewConversation request;
  request.title = "bob's secret";
  request.system_prompt = "bob's prompt";
  const Conversation bobs = Create(bob_, request);
  const Conversation alices = Titled(alice_, "alice's");
  clock_.Advance(1s);  // so that a write to bob's conversation would show in updated_at

  auto missing = Await(service_->Get(alice_, NewUuidV7()));
  ASSERT_FALSE(missing);
  ExpectError(missing.error(), ErrorCode::kNotFound);
  const std::string message = missing.error().message;

  for (const std::string& id : {bobs.id, std::string("not-a-uuid"), std::string("")}) {
    SCOPED_TRACE(id);
    auto got = Await(service_->Get(alice_, id));
    ASSERT_FALSE(got);
    ExpectError(got.error(), ErrorCode::kNotFound);
    EXPECT_EQ(got.error().message, message);

    ConversationChange change;
    change.title = "pwned";
    change.archived = true;
    change.system_prompt.emplace(std::nullopt);
    auto updated = Await(service_->Update(alice_, id, change));
    ASSERT_FALSE(updated);
    ExpectError(updated.error(), ErrorCode::kNotFound);
    EXPECT_EQ(updated.error().message, message);

    auto deleted = Await(service_->Delete(alice_, id));
    ASSERT_FALSE(deleted);
    ExpectError(deleted.error(), ErrorCode::kNotFound);
    EXPECT_EQ(deleted.error().message, message);
  }

  auto still = Await(service_->Get(bob_, bobs.id));
  ASSERT_TRUE(still) << still.error().message;
  EXPECT_EQ(still->title, "bob's secret");
  EXPECT_EQ(still->system_prompt, std::optional<std::string>("bob's prompt"));
  EXPECT_FALSE(still->archived);
  EXPECT_EQ(still->updated_at, bobs.updated_at);

  EXPECT_EQ(Ids(ListAll(alice_)), std::vector<std::string>{alices.id});
  EXPECT_EQ(Ids(ListAll(bob_)), std::vector<std::string>{bobs.id});
  ConversationFilter filter;
  filter.title_contains = "secret";
  EXPECT_TRUE(ListAll(alice_, filter).empty());
}

TEST(GenerationParamsTest, AcceptsTheKnownKeysInRange) {
  for (const char* ok : {"{}", R"({"temperature":0})", R"({"temperature":2.0})", R"({"top_p":0.95})",
                         R"({"max_tokens":1})", R"({"max_tokens":1000000})", " { \"top_p\" : 1 } "}) {
    EXPECT_TRUE(CheckGenerationParams(ok)) << ok;
  }
  EXPECT_FALSE(CheckGenerationParams(std::string(5000, ' ') + "{}"));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConversationServiceTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::chat
