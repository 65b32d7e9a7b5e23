// ChatService (the chat turn) against the demo provider on every backend, with a sink that
// records events: what a client sees and what is stored must agree, and failures must
// leave the message stored with status "error".
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "chat/chat_service.hpp"
#include "core/ids.hpp"
#include "llm/demo_provider.hpp"

namespace chatd::chat {
namespace {

using namespace std::chrono_literals;
using chatd::testing::Backend;

// Records every event; stops "listening" after `listen_for` events (a client leaving).
class RecordingSink final : public TurnSink {
 public:
  explicit RecordingSink(std::size_t listen_for = SIZE_MAX) : listen_for_(listen_for) {}
  Task<bool> Send(const TurnEvent& event) override {
    events.push_back(event);
    co_return events.size() < listen_for_;
  }
  std::vector<TurnEvent> events;

 private:
  std::size_t listen_for_;
};

class ChatTurnTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    for (const auto& model : llm::DemoProvider::Models()) ASSERT_TRUE(models_.Add(demo_, model));
    conversations_ = std::make_unique<ConversationService>(database_.db(), clock_);
    messages_ = std::make_unique<MessageService>(database_.db(), clock_);
    ChatConfig config;
    config.idle_timeout = 50ms;
    config.flush_interval = 0ms;  // store every piece, so the test sees each flush
    chat_ = std::make_unique<ChatService>(config, *conversations_, *messages_, models_, generations_, metrics_);

    user_ = database_.InsertUser("turn@example.com", clock_.Now());
    NewConversation request;
    request.system_prompt = "Be brief.";
    auto created = database_.Await(conversations_->Create(user_, request));
    ASSERT_TRUE(created);
    conversation_ = created->id;
  }
  void TearDown() override { database_.Drain(); }

  Expected<Message> Turn(TurnRequest request, TurnSink& sink) {
    return database_.Await(chat_->Run(user_, conversation_, request, sink));
  }

  chatd::testing::TestDatabase database_;
  ManualClock clock_;
  llm::DemoProvider demo_{llm::DemoConfig{1ms, 1ms, 3}};  // paced, so cancels can land
  llm::ModelRegistry models_;
  Generations generations_;
  metrics::Registry registry_;
  llm::CallMetrics llm_metrics_{registry_};
  ChatMetrics metrics_{registry_, llm_metrics_};
  std::unique_ptr<ConversationService> conversations_;
  std::unique_ptr<MessageService> messages_;
  std::unique_ptr<ChatService> chat_;
  std::string user_;
  std::string conversation_;
};

TEST_P(ChatTurnTest, EventsMatchWhatIsStored) {
  RecordingSink sink;
  auto message = Turn({"Hello there"}, sink);
  ASSERT_TRUE(message) << message.error().message;
  ASSERT_GE(sink.events.size(), 3u);
  EXPECT_EQ(sink.events.front().type, TurnEvent::Type::kMessageCreated);
  EXPECT_EQ(sink.events.back().type, TurnEvent::Type::kCompleted);
  std::string streamed;
  for (const auto& event : sink.events) {
    if (event.type == TurnEvent::Type::kDelta) streamed += event.content;
    EXPECT_EQ(event.assistant_message_id, message->id);
  }
  EXPECT_EQ(message->content, streamed);
  EXPECT_EQ(message->status, "complete");
  EXPECT_EQ(message->finish_reason.value_or(""), "stop");
  EXPECT_EQ(message->completion_tokens, static_cast<std::int64_t>(sink.events.size() - 2));
  EXPECT_EQ(message->completion_tokens, sink.events.back().usage.completion_tokens);
  EXPECT_NE(streamed.find("Hello there"), std::string::npos);
}

TEST_P(ChatTurnTest, AClientThatLeavesStillGetsItsAnswerStored) {
  RecordingSink sink(/*listen_for=*/2);
  auto message = Turn({"keep going"}, sink);
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_EQ(sink.events.size(), 2u);  // nothing is sent after the client left
  EXPECT_EQ(message->status, "complete");
  EXPECT_GT(message->completion_tokens, 5);
}

TEST_P(ChatTurnTest, FailuresEndWithAnErrorEventAndAStoredError) {
  RecordingSink failing;
  auto failed = Turn({"x", std::nullopt, "demo-error"}, failing);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, "error");
  EXPECT_EQ(failing.events.back().type, TurnEvent::Type::kError);
  EXPECT_EQ(failing.events.back().error.code, ErrorCode::kUpstreamUnavailable);

  RecordingSink stalled;
  auto stall = Turn({"y", std::nullopt, "demo-stall"}, stalled);
  ASSERT_TRUE(stall);
  EXPECT_EQ(stall->status, "error");
  EXPECT_FALSE(stall->content.empty()) << "what arrived before the stall is kept";
  EXPECT_EQ(stalled.events.back().error.code, ErrorCode::kUpstreamTimeout);
}

TEST_P(ChatTurnTest, RefusalsComeBeforeAnythingIsStored) {
  RecordingSink sink;
  EXPECT_EQ(Turn({"", std::nullopt}, sink).error().param, "content");
  EXPECT_EQ(Turn({"x", std::nullopt, "no-such-model"}, sink).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(Turn({"x", std::nullopt, "demo-embedding"}, sink).error().param, "model");
  EXPECT_EQ(Turn({"x", std::nullopt, "", 3.0}, sink).error().param, "temperature");
  EXPECT_EQ(database_.Await(chat_->Run(NewUuidV7(), conversation_, {"x"}, sink)).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(sink.events.empty());
  auto branch = database_.Await(messages_->GetBranch(user_, conversation_, PageRequest{100, {}}, false));
  ASSERT_TRUE(branch);
  EXPECT_TRUE(branch->items.empty());
}

TEST_P(ChatTurnTest, MaxTokensAndTheHistoryReachTheModel) {
  RecordingSink first;
  ASSERT_TRUE(Turn({"first"}, first));
  RecordingSink second;
  TurnRequest request{"second"};
  request.max_tokens = 3;
  auto message = Turn(request, second);
  ASSERT_TRUE(message);
  EXPECT_EQ(message->completion_tokens, 3);
  EXPECT_EQ(message->finish_reason.value_or(""), "length");
  EXPECT_GT(second.events.back().usage.prompt_tokens, first.events.back().usage.prompt_tokens);
}

// Cancels the generation it is listening to once it has seen `after` events.
class CancellingSink final : public TurnSink {
 public:
  CancellingSink(Generations& generations, std::string user_id, std::size_t after)
      : generations_(generations), user_id_(std::move(user_id)), after_(after) {}
  Task<bool> Send(const TurnEvent& event) override {
    events.push_back(event);
    if (events.size() == after_) cancel_accepted = generations_.Cancel(user_id_, event.assistant_message_id);
    co_return true;
  }
  std::vector<TurnEvent> events;
  bool cancel_accepted = false;

 private:
  Generations& generations_;
  std::string user_id_;
  std::size_t after_;
};

TEST_P(ChatTurnTest, ACancelStopsTheGenerationAndStoresWhatArrived) {
  CancellingSink sink(generations_, user_, 3);
  TurnRequest request{"please stop me"};
  request.model = "demo-slow";
  auto message = Turn(request, sink);
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_TRUE(sink.cancel_accepted);
  EXPECT_EQ(message->status, "cancelled");
  EXPECT_EQ(message->finish_reason.value_or(""), "cancelled");
  EXPECT_LT(message->completion_tokens, 100);
  EXPECT_EQ(sink.events.back().type, TurnEvent::Type::kCompleted);
  EXPECT_EQ(sink.events.back().finish_reason, "cancelled");
  EXPECT_FALSE(generations_.Cancel(user_, message->id)) << "a finished generation is gone from the registry";
}

TEST_P(ChatTurnTest, OnlyTheOwnerCanCancel) {
  CancellingSink sink(generations_, NewUuidV7(), 3);  // someone else tries
  TurnRequest request{"not yours"};
  request.model = "demo-slow";
  request.max_tokens = 10;
  auto message = Turn(request, sink);
  ASSERT_TRUE(message);
  EXPECT_FALSE(sink.cancel_accepted);
  EXPECT_EQ(message->status, "complete");
}

TEST_P(ChatTurnTest, CancelOnDisconnectStopsWhenTheClientLeaves) {
  RecordingSink sink(/*listen_for=*/3);
  TurnRequest request{"I will leave"};
  request.model = "demo-slow";
  request.cancel_on_disconnect = true;
  auto message = Turn(request, sink);
  ASSERT_TRUE(message);
  EXPECT_EQ(message->status, "cancelled");
  EXPECT_LT(message->completion_tokens, 10);
}

TEST_P(ChatTurnTest, RevokingACredentialStopsOnlyWhatItStarted) {
  CancellingSink sink(generations_, user_, 1000);  // never cancels by itself
  TurnRequest request{"key work"};
  request.model = "demo-slow";
  request.max_tokens = 20;
  request.credential_id = "key-1";
  std::optional<Expected<Message>> result;
  asio::io_context& io = database_.io();
  asio::co_spawn(
      io, [&]() -> Task<void> { result.emplace(co_await chat_->Run(user_, conversation_, request, sink)); },
      asio::detached);
  io.restart();
  auto run_until = [&io](auto done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_for(100ms);
  };
  run_until([&] { return sink.events.size() >= 3; });
  EXPECT_EQ(generations_.CancelAll(user_, "key-2"), 0u);
  EXPECT_EQ(generations_.CancelAll(user_, "key-1"), 1u);
  run_until([&] { return result.has_value(); });
  ASSERT_TRUE(*result);
  EXPECT_EQ((*result)->status, "cancelled");
}

TEST_P(ChatTurnTest, AGenerationStopsAtTheMaximumDuration) {
  ChatConfig config;
  config.max_duration = 30ms;
  ChatService bounded(config, *conversations_, *messages_, models_, generations_, metrics_);
  RecordingSink sink;
  TurnRequest request{"take your time"};
  request.model = "demo-slow";  // 100 tokens at 1 ms each here: longer than 30 ms
  auto message = database_.Await(bounded.Run(user_, conversation_, request, sink));
  ASSERT_TRUE(message);
  EXPECT_EQ(message->status, "error");
  EXPECT_FALSE(message->content.empty());
  EXPECT_LT(message->completion_tokens, 100);
  EXPECT_EQ(sink.events.back().error.code, ErrorCode::kUpstreamTimeout);
}

TEST_P(ChatTurnTest, AFollowerResumingGetsExactlyTheEventsAfterItsLastOne) {
  RecordingSink first(/*listen_for=*/4);  // leaves after message.created and 3 deltas
  TurnRequest request{"resume me"};
  request.model = "demo-slow";
  request.max_tokens = 12;
  auto message = Turn(request, first);
  ASSERT_TRUE(message);
  EXPECT_EQ(message->status, "complete");
  std::shared_ptr<Generation> generation = generations_.Find(user_, message->id);
  ASSERT_TRUE(generation) << "a finished generation stays a while for resuming";
  EXPECT_FALSE(generations_.Find(NewUuidV7(), message->id)) << "someone else's looks missing";

  RecordingSink resumed;
  EXPECT_TRUE(database_.Await(generation->Follow(first.events.back().id, resumed, 1s)));
  ASSERT_FALSE(resumed.events.empty());
  EXPECT_EQ(resumed.events.front().id, first.events.back().id + 1);
  std::string text;
  for (const auto& event : first.events) text += event.content;
  for (const auto& event : resumed.events) {
    text += event.content;
    if (&event != &resumed.events.front()) {
      EXPECT_EQ(event.id, (&event - 1)->id + 1);
    }
  }
  EXPECT_EQ(text, message->content);
  EXPECT_EQ(resumed.events.back().type, TurnEvent::Type::kCompleted);
}

TEST_P(ChatTurnTest, TheFirstExchangeTitlesTheConversationInTheBackground) {
  RecordingSink sink;
  auto message = Turn(TurnRequest{"How do tides work on Earth? Explain please"}, sink);
  ASSERT_TRUE(message);
  database_.Drain();  // the title is written after the answer, by the generation
  auto conversation = database_.Await(conversations_->Get(user_, conversation_));
  ASSERT_TRUE(conversation);
  EXPECT_EQ(conversation->title, "How do tides work on Earth?");

  ASSERT_TRUE(database_.Await(conversations_->Update(user_, conversation_, {.title = "Mine"})));
  RecordingSink second;
  ASSERT_TRUE(Turn(TurnRequest{"another question"}, second));
  database_.Drain();
  EXPECT_EQ(database_.Await(conversations_->Get(user_, conversation_))->title, "Mine") << "a title is never replaced";
}

TEST_P(ChatTurnTest, RegeneratingAnswersTheSameQuestionOnANewBranch) {
  RecordingSink sink;
  auto first = Turn(TurnRequest{"say something"}, sink);
  ASSERT_TRUE(first);
  TurnRequest again;
  again.regenerate = first->id;
  RecordingSink sink2;
  auto second = Turn(again, sink2);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second->id, first->id);
  EXPECT_EQ(second->parent_id, first->parent_id) << "a sibling of the answer it replaces";
  EXPECT_EQ(second->status, "complete");

  TurnRequest of_the_question;
  of_the_question.regenerate = *first->parent_id;  // naming the question works too
  RecordingSink sink3;
  auto third = Turn(of_the_question, sink3);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->parent_id, first->parent_id);

  TurnRequest missing;
  missing.regenerate = NewUuidV7();
  RecordingSink sink4;
  EXPECT_EQ(Turn(missing, sink4).error().code, ErrorCode::kNotFound);
}

TEST(GenerationsTest, KeepsAtMostMaxFinishedAndNeverDropsLiveOnes) {
  asio::io_context io(1);
  Generations generations(std::chrono::minutes(10), /*max_finished=*/2);
  auto add = [&](bool finish) {
    GenerationInfo info;
    info.message_id = NewUuidV7();
    info.user_id = "u";
    auto generation = std::make_shared<Generation>(info, io.get_executor());
    if (finish) generation->Finish(TurnEvent{.type = TurnEvent::Type::kCompleted});
    generations.Add(generation);
    return info.message_id;
  };
  const std::string live = add(false);
  std::vector<std::string> finished;
  for (int i = 0; i < 4; ++i) finished.push_back(add(true));
  std::this_thread::sleep_for(1100ms);  // finished generations are swept at most once a second
  add(false);
  EXPECT_TRUE(generations.Find("u", live)) << "a live generation is never dropped";
  EXPECT_FALSE(generations.Find("u", finished[0])) << "the oldest finished ones go first";
  EXPECT_FALSE(generations.Find("u", finished[1]));
  EXPECT_TRUE(generations.Find("u", finished[2]));
  EXPECT_TRUE(generations.Find("u", finished[3]));
}

INSTANTIATE_TEST_SUITE_P(Backends, ChatTurnTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::chat
