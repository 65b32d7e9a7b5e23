// Export and import (ConversationArchive) on every backend, and the pure pieces: the
// Markdown rendering, file names, and the order an export lists messages in.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "chat/conversation_archive.hpp"
#include "chat/conversation_service.hpp"
#include "chat/message_service.hpp"

namespace chatd::chat {
namespace {

using namespace std::chrono_literals;
using chatd::testing::Backend;

// --- pure pieces ------------------------------------------------------------------------

Message M(std::string id, std::optional<std::string> parent, std::string role, std::string content) {
  Message m;
  m.id = std::move(id);
  m.parent_id = std::move(parent);
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

TEST(RenderMarkdownTest, ActiveBranchWithHeadings) {
  ConversationExport document;
  document.conversation.title = "Line\nbreak";
  document.conversation.system_prompt = "Be kind.";
  document.messages = {M("1", std::nullopt, "user", "hi"), M("2", "1", "assistant", "**hello**"),
                       M("3", "1", "assistant", "other branch"), M("4", "2", "user", "bye")};
  document.messages[1].model = "demo";
  document.messages[3].status = "cancelled";
  document.current_leaf_id = "4";
  EXPECT_EQ(RenderMarkdown(document),
            "# Line break\n\n## System prompt\n\nBe kind.\n\n## User\n\nhi\n\n## Assistant (demo)\n\n**hello**\n\n"
            "## User\n\nbye\n\n_(cancelled)_\n");
  const auto branch = ActiveBranch(document);
  ASSERT_EQ(branch.size(), 3u);
  EXPECT_EQ(branch[2]->id, "4");
}

TEST(ExportFileNameTest, KeepsSafeCharactersOnly) {
  Conversation c;
  c.title = "Trip: Paris/Rome \"2026\" ..";
  EXPECT_EQ(ExportFileName(c, "json"), "Trip-Paris-Rome-2026.json");
  c.title = "../../etc/passwd";
  EXPECT_EQ(ExportFileName(c, "md"), "etc-passwd.md");
  c.title = "日本語";
  EXPECT_EQ(ExportFileName(c, "md"), "conversation.md");
  c.title = std::string(100, 'a');
  EXPECT_EQ(ExportFileName(c, "json"), std::string(60, 'a') + ".json");
}

// --- ConversationArchive ----------------------------------------------------------------

class ConversationArchiveTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    conversations_ = std::make_unique<ConversationService>(database_.db(), clock_);
    messages_ = std::make_unique<MessageService>(database_.db(), clock_);
    archive_ = std::make_unique<ConversationArchive>(database_.db(), clock_);
    alice_ = database_.InsertUser("alice@example.com", clock_.Now());
    bob_ = database_.InsertUser("bob@example.com", clock_.Now());
  }

  void TearDown() override { database_.Drain(); }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  std::string NewConversation(const std::string& user) {
    chat::NewConversation request;
    request.title = "original";
    request.params = R"({"temperature":0.25})";
    auto created = Await(conversations_->Create(user, request));
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->id : std::string();
  }

  // The clock does not move: every message has the same created_at, so only the tree
  // itself can put parents first.
  Message Add(const std::string& conversation, std::string content,
              std::optional<std::optional<std::string>> parent = std::nullopt, std::string role = "user") {
    NewMessage request;
    request.role = std::move(role);
    request.content = std::move(content);
    request.parent_id = std::move(parent);
    auto added = Await(messages_->Add(alice_, conversation, request));
    EXPECT_TRUE(added) << added.error().message;
    return added ? *added : Message{};
  }

  ConversationExport Export(const std::string& user, const std::string& conversation) {
    auto document = Await(archive_->Export(user, conversation));
    EXPECT_TRUE(document) << document.error().message;
    return document ? *document : ConversationExport{};
  }

  static ConversationImport ToImport(const ConversationExport& document) {
    ConversationImport out;
    out.conversation.title = document.conversation.title;
    out.conversation.model = document.conversation.model;
    out.conversation.system_prompt = document.conversation.system_prompt;
    out.conversation.params = document.conversation.params;
    out.current_leaf_id = document.current_leaf_id;
    for (const auto& m : document.messages) {
      ImportedMessage in;
      in.id = m.id;
      in.parent_id = m.parent_id;
      in.role = m.role;
      in.content = m.content;
      in.status = m.status;
      in.model = m.model;
      in.created_at = m.created_at;
      out.messages.push_back(std::move(in));
    }
    return out;
  }

  // The tree as contents: each message's content → its parent's content ("" for roots).
  static std::map<std::string, std::string> Shape(const ConversationExport& document) {
    std::map<std::string, std::string> content_of;
    for (const auto& m : document.messages) content_of[m.id] = m.content;
    std::map<std::string, std::string> shape;
    for (const auto& m : document.messages) shape[m.content] = m.parent_id ? content_of[*m.parent_id] : "";
    return shape;
  }

  std::int64_t ConversationCount() {
    auto rows = Await(database_.db().Execute("SELECT COUNT(*) AS n FROM conversations"));
    EXPECT_TRUE(rows) << rows.error().message;
    return rows ? rows->Int(0, "n") : -1;
  }

  chatd::testing::TestDatabase database_;
  ManualClock clock_;
  std::unique_ptr<ConversationService> conversations_;
  std::unique_ptr<MessageService> messages_;
  std::unique_ptr<ConversationArchive> archive_;
  std::string alice_;
  std::string bob_;
};

TEST_P(ConversationArchiveTest, ExportListsParentsFirstEvenWithinOneMillisecond) {
  const std::string conversation = NewConversation(alice_);
  const Message root = Add(conversation, "root");
  const Message a = Add(conversation, "a", std::optional<std::string>(root.id));
  const Message b = Add(conversation, "b", std::optional<std::string>(root.id));
  Add(conversation, "a1", std::optional<std::string>(a.id));
  Add(conversation, "b1", std::optional<std::string>(b.id));
  const Message root2 = Add(conversation, "root2", std::optional<std::string>());
  const auto document = Export(alice_, conversation);
  ASSERT_EQ(document.messages.size(), 6u);
  std::set<std::string> seen;
  for (const auto& m : document.messages) {
    if (m.parent_id) {
      EXPECT_TRUE(seen.contains(*m.parent_id)) << m.content;
    }
    seen.insert(m.id);
  }
  EXPECT_EQ(document.current_leaf_id, root2.id);
}

TEST_P(ConversationArchiveTest, ImportCopiesTheTreeWithNewIds) {
  const std::string conversation = NewConversation(alice_);
  clock_.Advance(1ms);
  const Message root = Add(conversation, "root");
  clock_.Advance(1ms);
  const Message answer = Add(conversation, "answer", std::optional<std::string>(root.id), "assistant");
  clock_.Advance(1ms);
  Add(conversation, "edited answer", std::optional<std::string>(root.id), "assistant");
  auto switched = Await(messages_->SwitchLeaf(alice_, conversation, answer.id));
  ASSERT_TRUE(switched);
  const auto original = Export(alice_, conversation);

  auto imported = Await(archive_->Import(alice_, ToImport(original)));
  ASSERT_TRUE(imported) << imported.error().message;
  EXPECT_NE(imported->id, conversation);
  EXPECT_EQ(imported->params, R"({"temperature":0.25})");
  const auto copy = Export(alice_, imported->id);
  EXPECT_EQ(Shape(copy), Shape(original));
  ASSERT_EQ(copy.messages.size(), 3u);
  for (std::size_t i = 0; i < copy.messages.size(); ++i) {
    EXPECT_NE(copy.messages[i].id, original.messages[i].id);
    EXPECT_EQ(copy.messages[i].created_at, original.messages[i].created_at);  // distinct times are kept
  }
  ASSERT_TRUE(copy.current_leaf_id);
  EXPECT_EQ(copy.messages[1].id, *copy.current_leaf_id);  // "answer", as in the original
  // Bob cannot see it; nor can he export Alice's.
  EXPECT_EQ(Await(archive_->Export(bob_, imported->id)).error().code, ErrorCode::kNotFound);
}

TEST_P(ConversationArchiveTest, ImportMakesTiedTimesIncreasing) {
  ConversationImport document;
  for (const char* id : {"1", "2", "3"}) {
    ImportedMessage m;
    m.id = id;
    m.role = "user";
    m.content = id;
    if (std::string(id) != "1") m.parent_id = "1";
    m.created_at = "2026-01-02T03:04:05.000Z";
    document.messages.push_back(m);
  }
  auto imported = Await(archive_->Import(alice_, document));
  ASSERT_TRUE(imported) << imported.error().message;
  const auto copy = Export(alice_, imported->id);
  ASSERT_EQ(copy.messages.size(), 3u);
  EXPECT_EQ(copy.messages[0].created_at, "2026-01-02T03:04:05.000Z");
  EXPECT_EQ(copy.messages[1].created_at, "2026-01-02T03:04:05.001Z");
  EXPECT_EQ(copy.messages[2].created_at, "2026-01-02T03:04:05.002Z");
  EXPECT_EQ(copy.messages[1].content, "2");  // sibling order kept
  EXPECT_EQ(copy.current_leaf_id, copy.messages[2].id);
}

TEST_P(ConversationArchiveTest, BadImportsNameTheFieldAndStoreNothing) {
  const auto before = ConversationCount();
  const auto good = [] {
    ConversationImport document;
    ImportedMessage a;
    a.id = "a";
    a.role = "user";
    a.content = "q";
    ImportedMessage b = a;
    b.id = "b";
    b.parent_id = "a";
    b.role = "assistant";
    document.messages = {a, b};
    return document;
  };
  std::vector<std::pair<ConversationImport, std::string>> cases;
  auto add = [&](auto change, std::string param) {
    ConversationImport document = good();
    change(document);
    cases.emplace_back(std::move(document), std::move(param));
  };
  add([](ConversationImport& d) { d.conversation.title = std::string(201, 't'); }, "conversation.title");
  add([](ConversationImport& d) { d.conversation.params = R"({"top_p":3})"; }, "conversation.params.top_p");
  add([](ConversationImport& d) { d.messages[1].id = "a"; }, "messages[1].id");
  add([](ConversationImport& d) { d.messages[0].parent_id = "b"; }, "messages[0].parent_id");
  add([](ConversationImport& d) { d.messages[0].parent_id = "a"; }, "messages[0].parent_id");
  add([](ConversationImport& d) { d.messages[1].role = "moderator"; }, "messages[1].role");
  add([](ConversationImport& d) { d.messages[1].status = "finished"; }, "messages[1].status");
  add([](ConversationImport& d) { d.messages[1].prompt_tokens = -5; }, "messages[1].usage.prompt_tokens");
  add([](ConversationImport& d) { d.messages[1].created_at = "2026-13-01T00:00:00Z"; }, "messages[1].created_at");
  add([](ConversationImport& d) { d.current_leaf_id = "a"; }, "current_leaf_id");
  add([](ConversationImport& d) { d.current_leaf_id = "c"; }, "current_leaf_id");
  add([](ConversationImport& d) { d.messages.resize(kMaxArchiveMessages + 1, d.messages[0]); }, "messages");
  for (const auto& [document, param] : cases) {
    auto imported = Await(archive_->Import(alice_, document));
    ASSERT_FALSE(imported) << param;
    EXPECT_EQ(imported.error().code, ErrorCode::kInvalidArgument) << param;
    EXPECT_EQ(imported.error().param, param);
  }
  EXPECT_EQ(ConversationCount(), before);
  EXPECT_TRUE(Await(archive_->Import(alice_, good())));
  EXPECT_EQ(ConversationCount(), before + 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, ConversationArchiveTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::chat
