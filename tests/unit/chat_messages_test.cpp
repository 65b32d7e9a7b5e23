// MessageService (message trees) on every backend (see accounts_test_database.hpp: SQLite
// in memory, PostgreSQL when CHATD_TEST_DATABASE_URL is set), with a manual clock that
// advances 1 ms per message so "newest" is well defined.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "chat/answer_writer.hpp"
#include "chat/conversation_service.hpp"
#include "chat/message_service.hpp"
#include "core/ids.hpp"
#include "store/accounts_repository.hpp"

namespace chatd::chat {
namespace {

using namespace std::chrono_literals;
using chatd::testing::Backend;
using Ids = std::vector<std::string>;

class MessageServiceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    conversations_ = std::make_unique<ConversationService>(database_.db(), clock_);
    messages_ = std::make_unique<MessageService>(database_.db(), clock_);
    alice_ = AddUser("alice@example.com");
    bob_ = AddUser("bob@example.com");
    conversation_ = NewConversationOf(alice_);
  }

  void TearDown() override { database_.Drain(); }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  std::string AddUser(std::string_view email) { return database_.InsertUser(email, clock_.Now()); }

  std::string NewConversationOf(const std::string& user_id) {
    auto created = Await(conversations_->Create(user_id, NewConversation{}));
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->id : std::string();
  }

  // A user message under the current leaf (nullopt) or under `parent`.
  Message User(std::string content, std::optional<std::optional<std::string>> parent = std::nullopt,
               const std::string* conversation = nullptr) {
    clock_.Advance(1ms);
    auto added = Await(messages_->AddUserMessage(alice_, conversation ? *conversation : conversation_,
                                                 std::move(content), std::move(parent)));
    EXPECT_TRUE(added) << added.error().message;
    return added ? *added : Message{};
  }

  // A finished assistant answer under `parent`.
  Message Assistant(const std::string& parent, std::string content) {
    clock_.Advance(1ms);
    auto started = Await(messages_->StartAssistantMessage(alice_, conversation_, parent, std::string("demo")));
    EXPECT_TRUE(started) << started.error().message;
    if (!started) return {};
    MessageProgress done;
    done.content = std::move(content);
    done.status = "complete";
    done.finish_reason = "stop";
    auto flushed = Await(messages_->FlushAssistant(alice_, started->id, done));
    EXPECT_TRUE(flushed) << flushed.error().message;
    return *started;
  }

  std::vector<BranchMessage> Branch(bool siblings = true, std::size_t limit = 100) {
    auto page = Await(messages_->GetBranch(alice_, conversation_, PageRequest{limit, ""}, siblings));
    EXPECT_TRUE(page) << page.error().message;
    return page ? page->items : std::vector<BranchMessage>{};
  }

  static Ids IdsOf(const std::vector<BranchMessage>& branch) {
    Ids ids;
    for (const auto& m : branch) ids.push_back(m.message.id);
    return ids;
  }

  void Switch(const std::string& message_id, const std::string& want_leaf) {
    clock_.Advance(1ms);
    auto leaf = Await(messages_->SwitchLeaf(alice_, conversation_, message_id));
    ASSERT_TRUE(leaf) << leaf.error().message;
    EXPECT_EQ(*leaf, want_leaf);
  }

  static void ExpectNotFound(const Error& error) { EXPECT_EQ(error.code, ErrorCode::kNotFound) << error.message; }

  chatd::testing::TestDatabase database_;
  ManualClock clock_;
  std::unique_ptr<ConversationService> conversations_;
  std::unique_ptr<MessageService> messages_;
  std::string alice_;
  std::string bob_;
  std::string conversation_;
};

TEST_P(MessageServiceTest, NewConversationHasAnEmptyBranch) {
  auto page = Await(messages_->GetBranch(alice_, conversation_, PageRequest{}, true));
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_TRUE(page->items.empty());
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST_P(MessageServiceTest, LinearConversationIsOldestFirst) {
  const Message u1 = User("hello");
  EXPECT_FALSE(u1.parent_id.has_value());
  EXPECT_EQ(u1.role, "user");
  EXPECT_EQ(u1.status, "complete");
  const Message a1 = Assistant(u1.id, "hi there");
  const Message u2 = User("how are you?");  // under the current leaf: a1
  ASSERT_TRUE(u2.parent_id.has_value());
  EXPECT_EQ(*u2.parent_id, a1.id);
  const Message a2 = Assistant(u2.id, "fine");

  const auto branch = Branch();
  EXPECT_EQ(IdsOf(branch), (Ids{u1.id, a1.id, u2.id, a2.id}));
  ASSERT_EQ(branch.size(), 4u);
  EXPECT_EQ(branch[1].message.content, "hi there");
  EXPECT_EQ(branch[1].message.status, "complete");
  ASSERT_TRUE(branch[1].message.model.has_value());
  EXPECT_EQ(*branch[1].message.model, "demo");
  for (const auto& m : branch) {
    EXPECT_EQ(m.sibling_ids, Ids{m.message.id});
    EXPECT_EQ(m.sibling_index, 0u);
  }
  auto conversation = Await(conversations_->Get(alice_, conversation_));
  ASSERT_TRUE(conversation);
  EXPECT_EQ(conversation->updated_at, a2.created_at);  // adding moved the leaf and bumped it
}

TEST_P(MessageServiceTest, EditCreatesASiblingBranchAndSwitchingGoesBackAndForth) {
  const Message u1 = User("first question");
  const Message a1 = Assistant(u1.id, "first answer");
  const Message u2 = User("follow-up");
  const Message a2 = Assistant(u2.id, "second answer");
  // Edit the follow-up: a new user message under a1, sibling of u2.
  const Message u2b = User("edited follow-up", std::optional<std::string>(a1.id));
  const Message a2b = Assistant(u2b.id, "answer to the edit");

  auto branch = Branch();
  EXPECT_EQ(IdsOf(branch), (Ids{u1.id, a1.id, u2b.id, a2b.id}));
  ASSERT_EQ(branch.size(), 4u);
  EXPECT_EQ(branch[2].sibling_ids, (Ids{u2.id, u2b.id}));
  EXPECT_EQ(branch[2].sibling_index, 1u);
  EXPECT_EQ(branch[0].sibling_ids, Ids{u1.id});

  // Pick the older sibling: its newest leaf is a2.
  Switch(u2.id, a2.id);
  branch = Branch();
  EXPECT_EQ(IdsOf(branch), (Ids{u1.id, a1.id, u2.id, a2.id}));
  EXPECT_EQ(branch[2].sibling_index, 0u);
  // And back, naming the leaf itself.
  Switch(a2b.id, a2b.id);
  EXPECT_EQ(IdsOf(Branch()), (Ids{u1.id, a1.id, u2b.id, a2b.id}));
  // A non-leaf high up: descend by newest child (u2b is newer than u2).
  Switch(u1.id, a2b.id);

  // Editing the very first message: a second root.
  const Message root2 = User("another start", std::optional<std::string>());
  EXPECT_FALSE(root2.parent_id.has_value());
  branch = Branch();
  EXPECT_EQ(IdsOf(branch), Ids{root2.id});
  EXPECT_EQ(branch[0].sibling_ids, (Ids{u1.id, root2.id}));
  EXPECT_EQ(branch[0].sibling_index, 1u);
}

TEST_P(MessageServiceTest, RegenerateAddsASecondAnswerUnderTheSameQuestion) {
  const Message u1 = User("tell me a joke");
  const Message a1 = Assistant(u1.id, "joke one");
  const Message a1b = Assistant(u1.id, "joke two");
  auto branch = Branch();
  EXPECT_EQ(IdsOf(branch), (Ids{u1.id, a1b.id}));
  ASSERT_EQ(branch.size(), 2u);
  EXPECT_EQ(branch[1].sibling_ids, (Ids{a1.id, a1b.id}));
  EXPECT_EQ(branch[1].sibling_index, 1u);
  EXPECT_EQ(branch[1].message.content, "joke two");
  Switch(a1.id, a1.id);
  branch = Branch();
  EXPECT_EQ(IdsOf(branch), (Ids{u1.id, a1.id}));
  EXPECT_EQ(branch[1].sibling_index, 0u);
  // Without include_siblings, nothing is filled in.
  for (const auto& m : Branch(false)) EXPECT_TRUE(m.sibling_ids.empty());
}

TEST_P(MessageServiceTest, PaginatesASevenMessageBranchByThree) {
  Ids want;
  for (int i = 0; i < 7; ++i) want.push_back(User("message " + std::to_string(i)).id);
  Ids got;
  PageRequest page{3, ""};
  std::vector<std::size_t> sizes;
  for (int pages = 0; pages < 10; ++pages) {
    auto listed = Await(messages_->GetBranch(alice_, conversation_, page, pages % 2 == 0));
    ASSERT_TRUE(listed) << listed.error().message;
    sizes.push_back(listed->items.size());
    for (const auto& m : listed->items) got.push_back(m.message.id);
    if (listed->next_cursor.empty()) break;
    page.cursor = listed->next_cursor;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 1}));

  // A cursor that does not decode, or names a message off the active branch: 400.
  auto bad = Await(messages_->GetBranch(alice_, conversation_, PageRequest{3, "not-a-cursor!"}, false));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().param, "cursor");
  auto first = Await(messages_->GetBranch(alice_, conversation_, PageRequest{3, ""}, false));
  ASSERT_TRUE(first);
  Switch(want[0], want[6]);  // same branch: the cursor still works
  const Message fork = User("fork", std::optional<std::string>(want[0]));
  auto stale = Await(messages_->GetBranch(alice_, conversation_, PageRequest{3, first->next_cursor}, false));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().param, "cursor");
  (void)fork;
}

TEST_P(MessageServiceTest, OtherUsersConversationsAndMessagesAreNotFound) {
  const Message u1 = User("secret");
  const Message a1 = Assistant(u1.id, "secret answer");

  ExpectNotFound(Await(messages_->GetBranch(bob_, conversation_, PageRequest{}, true)).error());
  ExpectNotFound(Await(messages_->SwitchLeaf(bob_, conversation_, u1.id)).error());
  ExpectNotFound(Await(messages_->AddUserMessage(bob_, conversation_, "hi")).error());
  ExpectNotFound(
      Await(messages_->AddUserMessage(bob_, conversation_, "hi", std::optional<std::string>(a1.id))).error());
  ExpectNotFound(Await(messages_->StartAssistantMessage(bob_, conversation_, u1.id, std::nullopt)).error());
  ExpectNotFound(Await(messages_->Get(bob_, conversation_, u1.id)).error());
  MessageProgress overwrite{"pwned", "complete", 0, 0, std::nullopt, std::nullopt};
  ExpectNotFound(Await(messages_->FlushAssistant(bob_, a1.id, overwrite)).error());

  // Bob's own conversation with Alice's message as parent, or switched to: not found.
  const std::string bobs = NewConversationOf(bob_);
  ExpectNotFound(Await(messages_->AddUserMessage(bob_, bobs, "hi", std::optional<std::string>(u1.id))).error());
  ExpectNotFound(Await(messages_->SwitchLeaf(bob_, bobs, u1.id)).error());
  // Alice: a parent from her other conversation, or a leaf from it.
  const std::string other = NewConversationOf(alice_);
  const Message elsewhere = User("elsewhere", std::nullopt, &other);
  ExpectNotFound(
      Await(messages_->AddUserMessage(alice_, conversation_, "x", std::optional<std::string>(elsewhere.id))).error());
  ExpectNotFound(Await(messages_->SwitchLeaf(alice_, conversation_, elsewhere.id)).error());
  // Malformed and missing ids.
  ExpectNotFound(Await(messages_->GetBranch(alice_, "nope", PageRequest{}, false)).error());
  ExpectNotFound(Await(messages_->SwitchLeaf(alice_, conversation_, "nope")).error());
  ExpectNotFound(Await(messages_->SwitchLeaf(alice_, conversation_, NewUuidV7())).error());
  ExpectNotFound(Await(messages_->SwitchLeaf(alice_, NewUuidV7(), u1.id)).error());

  // Nothing changed for Alice.
  auto got = Await(messages_->Get(alice_, conversation_, a1.id));
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->content, "secret answer");
  EXPECT_EQ(IdsOf(Branch()), (Ids{u1.id, a1.id}));
}

TEST_P(MessageServiceTest, AddValidates) {
  NewMessage request;
  request.role = "wizard";
  auto added = Await(messages_->Add(alice_, conversation_, request));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().param, "role");
  request.role = "user";
  request.content = std::string(kMaxMessageBytes + 1, 'x');
  added = Await(messages_->Add(alice_, conversation_, request));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().param, "content");
  request.content = std::string(kMaxMessageBytes, 'x');  // the limit itself is fine
  added = Await(messages_->Add(alice_, conversation_, request));
  EXPECT_TRUE(added) << added.error().message;
  request.content = "ok";
  request.status = "thinking";
  added = Await(messages_->Add(alice_, conversation_, request));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().param, "status");
}

TEST_P(MessageServiceTest, FlushUpdatesContentStatusAndUsage) {
  const Message u1 = User("count to three");
  clock_.Advance(1ms);
  auto started = Await(messages_->StartAssistantMessage(alice_, conversation_, u1.id, std::string("demo")));
  ASSERT_TRUE(started) << started.error().message;
  EXPECT_EQ(started->status, "streaming");
  EXPECT_EQ(started->content, "");
  EXPECT_EQ(IdsOf(Branch()), (Ids{u1.id, started->id}));

  clock_.Advance(1s);
  MessageProgress progress{"one, two", "streaming", 0, 0, std::nullopt, std::nullopt};
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, started->id, progress)));
  auto got = Await(messages_->Get(alice_, conversation_, started->id));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->content, "one, two");
  EXPECT_EQ(got->status, "streaming");
  EXPECT_EQ(got->updated_at, FormatRfc3339(clock_.Now()));

  clock_.Advance(1s);
  progress = MessageProgress{"one, two, three", "complete", 12, 5, std::string("stop"), std::nullopt};
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, started->id, progress)));
  got = Await(messages_->Get(alice_, conversation_, started->id));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->content, "one, two, three");
  EXPECT_EQ(got->status, "complete");
  EXPECT_EQ(got->prompt_tokens, 12);
  EXPECT_EQ(got->completion_tokens, 5);
  EXPECT_EQ(got->finish_reason, std::optional<std::string>("stop"));
  EXPECT_FALSE(got->error.has_value());
  EXPECT_EQ(got->created_at, started->created_at);

  progress = MessageProgress{"partial", "error", 12, 1, std::nullopt, std::string("upstream timed out")};
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, started->id, progress)));
  got = Await(messages_->Get(alice_, conversation_, started->id));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, "error");
  EXPECT_EQ(got->error, std::optional<std::string>("upstream timed out"));
  EXPECT_FALSE(got->finish_reason.has_value());

  progress.status = "done";
  auto refused = Await(messages_->FlushAssistant(alice_, started->id, progress));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().param, "status");
  progress.status = "complete";
  ExpectNotFound(Await(messages_->FlushAssistant(alice_, NewUuidV7(), progress)).error());
}

TEST_P(MessageServiceTest, MarkInterruptedTurnsStreamingIntoIncompleteOnly) {
  const Message u1 = User("q1");
  auto streaming = Await(messages_->StartAssistantMessage(alice_, conversation_, u1.id, std::nullopt));
  ASSERT_TRUE(streaming);
  MessageProgress partial{"half an ans", "streaming", 0, 0, std::nullopt, std::nullopt};
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, streaming->id, partial)));
  clock_.Advance(1ms);
  auto cancelled = Await(messages_->StartAssistantMessage(alice_, conversation_, u1.id, std::nullopt));
  ASSERT_TRUE(cancelled);
  MessageProgress stopped{"stopped", "cancelled", 0, 0, std::nullopt, std::nullopt};
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, cancelled->id, stopped)));
  const Message done = Assistant(u1.id, "done");

  auto marked = Await(messages_->MarkInterrupted());
  ASSERT_TRUE(marked) << marked.error().message;
  EXPECT_EQ(*marked, 1);
  auto got = Await(messages_->Get(alice_, conversation_, streaming->id));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, "incomplete");
  EXPECT_EQ(got->content, "half an ans");  // what had arrived stays
  EXPECT_EQ(Await(messages_->Get(alice_, conversation_, cancelled->id))->status, "cancelled");
  EXPECT_EQ(Await(messages_->Get(alice_, conversation_, done.id))->status, "complete");
  EXPECT_EQ(Await(messages_->Get(alice_, conversation_, u1.id))->status, "complete");
  EXPECT_EQ(*Await(messages_->MarkInterrupted()), 0);
}

TEST_P(MessageServiceTest, DeletingTheConversationTakesItsMessages) {
  const Message u1 = User("bye");
  ASSERT_TRUE(Await(conversations_->Delete(alice_, conversation_)));
  ExpectNotFound(Await(messages_->Get(alice_, conversation_, u1.id)).error());
  ExpectNotFound(Await(messages_->GetBranch(alice_, conversation_, PageRequest{}, false)).error());
}

TEST_P(MessageServiceTest, GrowingAnswersAreWrittenInBatchesAndTheFinalStateWins) {
  const Message question = User("count to many");
  std::vector<std::string> answers;
  for (int i = 0; i < 5; ++i) {
    auto started = Await(messages_->StartAssistantMessage(alice_, conversation_, question.id, std::string("demo")));
    ASSERT_TRUE(started) << started.error().message;
    answers.push_back(started->id);
  }
  AnswerWriter writer(*messages_, 10ms);
  const asio::any_io_executor executor = database_.io().get_executor();
  for (int round = 1; round <= 3; ++round) {
    for (const std::string& id : answers) {
      MessageProgress progress;
      progress.status = "streaming";
      progress.content = std::string(static_cast<std::size_t>(round), 'x');
      writer.Put(executor, alice_, id, progress);  // replaces what is queued for it
    }
  }
  database_.Drain();  // the loop writes what is due, then stops: no timer left behind
  for (const std::string& id : answers) {
    auto stored = Await(messages_->Get(alice_, conversation_, id));
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->content, "xxx");
    EXPECT_EQ(stored->status, "streaming");
  }

  // A state queued after the final one must not overwrite it: Settle drops it.
  MessageProgress late;
  late.status = "streaming";
  late.content = "stale";
  writer.Put(executor, alice_, answers[0], late);
  asio::co_spawn(database_.io(), writer.Settle(answers[0]), asio::detached);
  database_.Drain();
  MessageProgress final_state;
  final_state.status = "complete";
  final_state.content = "done";
  ASSERT_TRUE(Await(messages_->FlushAssistant(alice_, answers[0], final_state)));
  database_.Drain();
  EXPECT_EQ(Await(messages_->Get(alice_, conversation_, answers[0]))->content, "done");

  // Someone else's message in a batch is not written, and does not fail the others.
  MessageProgress intruding;
  intruding.status = "streaming";
  intruding.content = "intrusion";
  writer.Put(executor, bob_, answers[1], intruding);
  intruding.content = "mine";
  writer.Put(executor, alice_, answers[2], intruding);
  database_.Drain();
  EXPECT_EQ(Await(messages_->Get(alice_, conversation_, answers[1]))->content, "xxx");
  EXPECT_EQ(Await(messages_->Get(alice_, conversation_, answers[2]))->content, "mine");
}

INSTANTIATE_TEST_SUITE_P(Backends, MessageServiceTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::chat
