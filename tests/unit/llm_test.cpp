#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "run_task.hpp"

#include "llm/demo_provider.hpp"
#include "llm/model_registry.hpp"

namespace chatd::llm {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

using chatd::testing::RunTask;

DemoConfig Fast() { return DemoConfig{.token_interval = milliseconds(0), .slow_token_interval = milliseconds(0)}; }

ChatRequest Request(std::string model, std::string prompt) {
  ChatRequest request;
  request.model = std::move(model);
  request.messages = {{"system", "Be brief."}, {"user", std::move(prompt)}};
  return request;
}

struct Drained {
  std::vector<ChatChunk> chunks;
  std::string text;
  std::optional<Error> error;  // from StreamChat or from Next
  milliseconds elapsed{0};
};

Task<Drained> Drain(Provider& provider, ChatRequest request) {
  Drained out;
  const auto start = steady_clock::now();
  auto stream = co_await provider.StreamChat(request);
  if (!stream) {
    out.error = stream.error();
    co_return out;
  }
  for (;;) {
    auto chunk = co_await (*stream)->Next();
    if (!chunk) {
      out.error = chunk.error();
      break;
    }
    if (!*chunk) break;
    out.text += (*chunk)->delta;
    out.chunks.push_back(std::move(**chunk));
  }
  out.elapsed = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  co_return out;
}

std::size_t CountWords(const std::string& text) {
  std::size_t words = 0;
  bool in_word = false;
  for (const char c : text) {
    if (c != ' ' && !in_word) ++words;
    in_word = c != ' ';
  }
  return words;
}

TEST(DemoProvider, StreamsADeterministicReplyDerivedFromThePrompt) {
  DemoProvider provider(Fast());
  const Drained a = RunTask(Drain(provider, Request("demo", "What is a B-tree?")));
  const Drained again = RunTask(Drain(provider, Request("demo", "What is a B-tree?")));
  const Drained other = RunTask(Drain(provider, Request("demo", "Tell me about hash maps.")));
  ASSERT_FALSE(a.error) << a.error->message;
  EXPECT_EQ(a.text, again.text);
  EXPECT_NE(a.text, other.text);
  EXPECT_EQ(a.text.rfind("You said: \"What is a B-tree?\".", 0), 0u) << a.text;
  EXPECT_GE(a.chunks.size(), 30u);
  EXPECT_LE(a.chunks.size(), 120u);
  // One word per chunk, each with its trailing space but the last.
  for (std::size_t i = 0; i + 1 < a.chunks.size(); ++i) {
    EXPECT_EQ(a.chunks[i].delta.back(), ' ') << i;
    EXPECT_EQ(CountWords(a.chunks[i].delta), 1u) << i;
    EXPECT_TRUE(a.chunks[i].finish_reason.empty());
    EXPECT_FALSE(a.chunks[i].usage);
  }
  EXPECT_NE(a.chunks.back().delta.back(), ' ');
  EXPECT_EQ(a.chunks.back().finish_reason, "stop");
}

TEST(DemoProvider, ReportsUsage) {
  DemoProvider provider(Fast());
  ChatRequest request = Request("demo", "hello there world");  // 2 + 3 words, 2 messages
  const Drained out = RunTask(Drain(provider, request));
  ASSERT_FALSE(out.error);
  ASSERT_TRUE(out.chunks.back().usage);
  EXPECT_EQ(out.chunks.back().usage->prompt_tokens, 2 + (4 + 2) + (4 + 3));
  EXPECT_EQ(out.chunks.back().usage->completion_tokens, static_cast<std::int64_t>(out.chunks.size()));
  EXPECT_EQ(CountWords(out.text), out.chunks.size());
}

TEST(DemoProvider, MaxTokensCutsTheReplyWithFinishReasonLength) {
  DemoProvider provider(Fast());
  ChatRequest request = Request("demo", "Explain streaming.");
  const Drained full = RunTask(Drain(provider, request));
  request.max_tokens = 5;
  const Drained cut = RunTask(Drain(provider, request));
  ASSERT_FALSE(cut.error);
  ASSERT_EQ(cut.chunks.size(), 5u);
  EXPECT_EQ(cut.chunks.back().finish_reason, "length");
  EXPECT_EQ(cut.chunks.back().usage->completion_tokens, 5);
  EXPECT_EQ(full.text.rfind(cut.text, 0), 0u);  // a prefix of the full reply
  EXPECT_NE(cut.text.back(), ' ');

  request.max_tokens = 10'000;
  EXPECT_EQ(RunTask(Drain(provider, request)).chunks.back().finish_reason, "stop");
}

TEST(DemoProvider, EndedStreamKeepsReturningNullopt) {
  DemoProvider provider(Fast());
  const auto result = RunTask([&]() -> Task<bool> {
    ChatRequest request = Request("demo", "hi");
    request.max_tokens = 1;
    auto stream = co_await provider.StreamChat(request);
    auto first = co_await (*stream)->Next();
    auto end = co_await (*stream)->Next();
    auto again = co_await (*stream)->Next();
    co_return first&&* first&& end && !*end && again && !*again;
  }());
  EXPECT_TRUE(result);
}

TEST(DemoProvider, SlowModelSendsOneHundredTokens) {
  DemoProvider provider(Fast());
  const Drained out = RunTask(Drain(provider, Request("demo-slow", "go")));
  ASSERT_FALSE(out.error);
  EXPECT_EQ(out.chunks.size(), 100u);
  EXPECT_EQ(out.chunks.back().finish_reason, "stop");
}

TEST(DemoProvider, PacesTokensWithTheConfiguredInterval) {
  DemoProvider provider(DemoConfig{.token_interval = milliseconds(5)});
  ChatRequest request = Request("demo", "pace yourself");
  request.max_tokens = 10;
  const Drained out = RunTask(Drain(provider, request));
  ASSERT_FALSE(out.error);
  ASSERT_EQ(out.chunks.size(), 10u);
  EXPECT_GE(out.elapsed, milliseconds(10 * 5));
  EXPECT_LT(out.elapsed, milliseconds(5000));  // loose: a loaded machine is slow, not stuck
}

TEST(DemoProvider, ErrorModelFailsBeforeTheFirstToken) {
  DemoProvider provider(Fast());
  const Drained out = RunTask(Drain(provider, Request("demo-error", "hi")));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(out.error->message, "demo-error always fails");
  EXPECT_TRUE(out.chunks.empty());
}

TEST(DemoProvider, RejectsInvalidRequests) {
  DemoProvider provider(Fast());
  EXPECT_EQ(RunTask(Drain(provider, Request("nope", "hi"))).error->code, ErrorCode::kNotFound);
  EXPECT_EQ(RunTask(Drain(provider, Request("demo-embedding", "hi"))).error->code, ErrorCode::kInvalidArgument);
  ChatRequest no_messages = Request("demo", "hi");
  no_messages.messages.clear();
  EXPECT_EQ(RunTask(Drain(provider, no_messages)).error->param, "messages");
  ChatRequest zero = Request("demo", "hi");
  zero.max_tokens = 0;
  EXPECT_EQ(RunTask(Drain(provider, zero)).error->param, "max_tokens");
}

TEST(DemoProvider, StallModelTimesOutAfterTheIdleTimeout) {
  DemoProvider provider(Fast());
  ChatRequest request = Request("demo-stall", "hello?");
  request.idle_timeout = milliseconds(50);
  const Drained out = RunTask(Drain(provider, request));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(out.chunks.size(), 3u);
  EXPECT_GE(out.elapsed, milliseconds(50));
  EXPECT_LT(out.elapsed, milliseconds(5000));
}

TEST(DemoProvider, FirstByteTimeoutBoundsTheFirstToken) {
  DemoProvider provider(DemoConfig{.token_interval = milliseconds(10'000)});
  ChatRequest request = Request("demo", "hi");
  request.first_byte_timeout = milliseconds(20);
  const Drained out = RunTask(Drain(provider, request));
  ASSERT_TRUE(out.error);
  EXPECT_EQ(out.error->code, ErrorCode::kUpstreamTimeout);
  EXPECT_TRUE(out.chunks.empty());
  EXPECT_LT(out.elapsed, milliseconds(5000));
}

// Starts `model` with `request`, reads `tokens` chunks, then calls Next() and cancels it from
// another coroutine after 10 ms. Returns the pending Next()'s result, how long it took, and
// the result of one more Next().
struct CancelOutcome {
  std::optional<Error> pending;
  std::optional<Error> after;
  milliseconds waited{0};
};

CancelOutcome CancelWhilePending(Provider& provider, ChatRequest request, int tokens) {
  asio::io_context io(1);
  CancelOutcome outcome;
  std::unique_ptr<ChatStream> stream;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        auto started = co_await provider.StreamChat(request);
        if (!started) throw std::runtime_error(started.error().message);
        stream = std::move(*started);
        for (int i = 0; i < tokens; ++i) {
          auto chunk = co_await stream->Next();
          if (!chunk || !*chunk) throw std::runtime_error("expected a token");
        }
        asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(10));
        asio::co_spawn(
            co_await asio::this_coro::executor,
            [&timer, &stream]() -> Task<void> {
              co_await timer.async_wait(kUseAwaitable);
              stream->Cancel();
              stream->Cancel();  // idempotent
            },
            asio::detached);
        const auto start = steady_clock::now();
        auto pending = co_await stream->Next();
        outcome.waited = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
        if (!pending) outcome.pending = pending.error();
        auto after = co_await stream->Next();
        if (!after) outcome.after = after.error();
      },
      asio::detached);
  io.run();
  return outcome;
}

TEST(DemoProvider, CancelCompletesAPendingNextDuringAPacedStream) {
  DemoProvider provider(DemoConfig{.token_interval = milliseconds(10'000)});
  ChatRequest request = Request("demo", "hi");
  request.first_byte_timeout = milliseconds(60'000);
  const CancelOutcome outcome = CancelWhilePending(provider, request, 0);
  ASSERT_TRUE(outcome.pending);
  EXPECT_EQ(outcome.pending->code, ErrorCode::kUnavailable);
  EXPECT_EQ(outcome.pending->message, "cancelled");
  EXPECT_LT(outcome.waited, milliseconds(2000));
  ASSERT_TRUE(outcome.after);
  EXPECT_EQ(outcome.after->message, "cancelled");
}

TEST(DemoProvider, CancelCompletesAPendingNextDuringAStall) {
  DemoProvider provider(Fast());
  ChatRequest request = Request("demo-stall", "hi");
  request.idle_timeout = milliseconds(60'000);
  const CancelOutcome outcome = CancelWhilePending(provider, request, 3);
  ASSERT_TRUE(outcome.pending);
  EXPECT_EQ(outcome.pending->code, ErrorCode::kUnavailable);
  EXPECT_LT(outcome.waited, milliseconds(2000));
  ASSERT_TRUE(outcome.after);
}

TEST(DemoProvider, CancelBeforeNextFailsTheNextAtOnce) {
  DemoProvider provider(Fast());
  const auto error = RunTask([&]() -> Task<std::optional<Error>> {
    auto stream = co_await provider.StreamChat(Request("demo", "hi"));
    (*stream)->Cancel();
    auto chunk = co_await (*stream)->Next();
    if (chunk) co_return std::nullopt;
    co_return chunk.error();
  }());
  ASSERT_TRUE(error);
  EXPECT_EQ(error->message, "cancelled");
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

Expected<Embeddings> Embed(Provider& provider, std::vector<std::string> input, std::optional<int> dimensions = {},
                           std::string model = "demo-embedding") {
  return RunTask(
      provider.Embed(EmbeddingRequest{.model = std::move(model), .input = std::move(input), .dimensions = dimensions}));
}

TEST(DemoProvider, EmbeddingsAreNormalisedAndDeterministic) {
  DemoProvider provider;
  const auto first = Embed(provider, {"the cat sat on the mat", "the cat sat on a mat", "quantum chromodynamics", ""});
  const auto again = Embed(provider, {"the cat sat on the mat"});
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->vectors.size(), 4u);
  EXPECT_EQ(first->model, "demo-embedding");
  for (const auto& vector : first->vectors) {
    ASSERT_EQ(vector.size(), 256u);
    EXPECT_NEAR(Dot(vector, vector), 1.0, 1e-5);
  }
  EXPECT_EQ(first->vectors[0], again->vectors[0]);
  EXPECT_GT(Dot(first->vectors[0], first->vectors[1]), Dot(first->vectors[0], first->vectors[2]));
  EXPECT_EQ(first->usage.prompt_tokens, 6 + 6 + 2 + 0);
}

TEST(DemoProvider, EmbeddingDimensions) {
  DemoProvider provider;
  const auto small = Embed(provider, {"hello"}, 8);
  ASSERT_TRUE(small);
  ASSERT_EQ(small->vectors[0].size(), 8u);
  EXPECT_NEAR(Dot(small->vectors[0], small->vectors[0]), 1.0, 1e-5);
  EXPECT_EQ(Embed(provider, {"hello"}, 1)->vectors[0].size(), 1u);
  EXPECT_EQ(Embed(provider, {"hello"}, 4096)->vectors[0].size(), 4096u);
  EXPECT_EQ(Embed(provider, {"hello"}, 0).error().param, "dimensions");
  EXPECT_EQ(Embed(provider, {"hello"}, 4097).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Embed(provider, {}).error().param, "input");
  EXPECT_EQ(Embed(provider, {"hello"}, {}, "demo").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Embed(provider, {"hello"}, {}, "nope").error().code, ErrorCode::kNotFound);
}

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (ModelInfo& info : DemoProvider::Models()) ASSERT_TRUE(registry_.Add(demo_, std::move(info)));
  }
  DemoProvider demo_{Fast()};
  ModelRegistry registry_;
};

TEST_F(ModelRegistryTest, ResolvesModelsAliasesAndTheDefault) {
  auto demo = registry_.Resolve("demo");
  ASSERT_TRUE(demo);
  EXPECT_EQ(&demo->provider, &demo_);
  EXPECT_EQ(demo->info.upstream_model, "demo");
  EXPECT_EQ(demo->info.owned_by, "chatd");
  EXPECT_FALSE(demo->info.embeddings);
  EXPECT_TRUE(registry_.Resolve("demo-embedding")->info.embeddings);

  ASSERT_TRUE(registry_.AddAlias("gpt-4o-mini", "demo-slow"));
  auto alias = registry_.Resolve("gpt-4o-mini");
  ASSERT_TRUE(alias);
  EXPECT_EQ(alias->info.id, "demo-slow");

  EXPECT_EQ(registry_.default_model(), "demo");
  EXPECT_EQ(registry_.Resolve("")->info.id, "demo");
}

TEST_F(ModelRegistryTest, UnknownNamesAreNotFound) {
  auto missing = registry_.Resolve("gpt-5");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message, "model 'gpt-5' does not exist");
  EXPECT_EQ(missing.error().param, "model");
  EXPECT_EQ(registry_.AddAlias("x", "gpt-5").error().code, ErrorCode::kNotFound);

  ModelRegistry other("llama3");
  EXPECT_EQ(other.Resolve("").error().message, "model 'llama3' does not exist");
}

TEST_F(ModelRegistryTest, RefusesDuplicatesAndListsModelsSorted) {
  ASSERT_TRUE(registry_.AddAlias("fast", "demo"));
  EXPECT_EQ(registry_.AddAlias("fast", "demo-slow").error().code, ErrorCode::kConflict);
  EXPECT_EQ(registry_.AddAlias("demo-slow", "demo").error().code, ErrorCode::kConflict);
  EXPECT_EQ(registry_.Add(demo_, DemoProvider::Models()[0]).error().code, ErrorCode::kConflict);
  EXPECT_EQ(registry_.Add(demo_, ModelInfo{.id = "fast", .provider = "demo"}).error().code, ErrorCode::kConflict);
  EXPECT_EQ(registry_.Add(demo_, ModelInfo{.id = "m", .provider = "openai"}).error().code, ErrorCode::kInvalidArgument);

  std::vector<std::string> ids;
  for (const ModelInfo& info : registry_.List()) ids.push_back(info.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"demo", "demo-embedding", "demo-error", "demo-slow", "demo-stall"}));
}

}  // namespace
}  // namespace chatd::llm
