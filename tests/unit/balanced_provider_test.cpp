// BalancedProvider with fake deployments: the weighted split, least-busy choices while
// streams are held open, breakers that skip a deployment, failover between deployments
// before the model's fallbacks; and the Router building it from a ModelConfig.
#include "llm/balanced_provider.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "http/client.hpp"
#include "llm/circuit_breaker.hpp"
#include "llm/demo_provider.hpp"
#include "llm/router.hpp"
#include "run_task.hpp"

namespace chatd::llm {
namespace {

using std::chrono::milliseconds;

using chatd::testing::RunTask;

// A stream of one chunk, with no I/O behind it (so tests may hold it across RunTask calls).
class OneChunkStream final : public ChatStream {
 public:
  explicit OneChunkStream(std::string text) : text_(std::move(text)) {}
  Task<Expected<std::optional<ChatChunk>>> Next() override {
    if (done_) co_return std::optional<ChatChunk>();
    done_ = true;
    co_return std::optional<ChatChunk>(ChatChunk{.delta = text_, .finish_reason = "stop", .usage = {}});
  }
  void Cancel() override { done_ = true; }

 private:
  std::string text_;
  bool done_ = false;
};

// Fails with the scripted errors in order, then answers "<name>:<model>"; counts its calls.
class FakeDeployment final : public Provider {
 public:
  explicit FakeDeployment(std::string name, std::deque<Error> failures = {})
      : name_(std::move(name)), failures_(std::move(failures)) {}
  std::string_view name() const override { return name_; }

  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override {
    ++calls_;
    if (auto failure = NextFailure()) co_return Unexpected{std::move(*failure)};
    co_return std::unique_ptr<ChatStream>(std::make_unique<OneChunkStream>(name_ + ":" + request.model));
  }
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override {
    ++calls_;
    if (auto failure = NextFailure()) co_return Unexpected{std::move(*failure)};
    co_return Embeddings{.vectors = {{1.0f}}, .usage = {}, .model = name_ + ":" + request.model};
  }

  int calls() const { return calls_.load(); }

 private:
  std::optional<Error> NextFailure() {
    if (failures_.empty()) return std::nullopt;
    Error error = failures_.front();
    failures_.pop_front();
    return error;
  }

  std::string name_;
  std::deque<Error> failures_;
  std::atomic<int> calls_{0};
};

Error Failure(ErrorCode code) { return Error{code, "scripted failure"}; }

ChatRequest Hello() {
  ChatRequest request;
  request.model = "ignored";
  request.messages = {{"user", "hello"}};
  return request;
}

// Opens a stream and returns it (or the error).
Task<Expected<std::unique_ptr<ChatStream>>> Open(Provider& provider) {
  const ChatRequest request = Hello();
  co_return co_await provider.StreamChat(request);
}

// Opens a stream, reads its text and drops it: the text, or the error's message.
Task<std::string> Answer(Provider& provider) {
  auto stream = co_await Open(provider);
  if (!stream) co_return "error: " + stream.error().message;
  auto chunk = co_await (*stream)->Next();
  if (!chunk || !*chunk) co_return std::string("no chunk");
  co_return (*chunk)->delta;
}

TEST(BalancedProvider, WeightedSplitIsExactAndSpreadOut) {
  FakeDeployment east("east");
  FakeDeployment west("west");
  BalancedProvider balanced("gpt", {{&east, "gpt-e", 3, nullptr}, {&west, "gpt-w", 1, nullptr}},
                            BalancePolicy::kWeighted);
  EXPECT_EQ(balanced.name(), "east+west");
  std::vector<std::string> answers;
  for (int i = 0; i < 8; ++i) answers.push_back(RunTask(Answer(balanced)));
  // nginx's smooth round-robin: west's turn comes in the middle of each cycle of 4.
  EXPECT_EQ(answers, (std::vector<std::string>{"east:gpt-e", "east:gpt-e", "west:gpt-w", "east:gpt-e", "east:gpt-e",
                                               "east:gpt-e", "west:gpt-w", "east:gpt-e"}));
  EXPECT_EQ(east.calls(), 6);
  EXPECT_EQ(west.calls(), 2);
  EXPECT_EQ(balanced.InFlight(), (std::vector<int>{0, 0}));
}

TEST(BalancedProvider, CallersOnSeveralThreadsKeepTheSplitExact) {
  FakeDeployment east("east");
  FakeDeployment west("west");
  BalancedProvider balanced("gpt", {{&east, "m", 3, nullptr}, {&west, "m", 1, nullptr}}, BalancePolicy::kWeighted);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&balanced] {
      for (int i = 0; i < 100; ++i) RunTask(Answer(balanced));  // each call on its own io_context
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(east.calls(), 300);  // 400 calls: 100 whole cycles, however they interleaved
  EXPECT_EQ(west.calls(), 100);
  EXPECT_EQ(balanced.InFlight(), (std::vector<int>{0, 0}));
}

TEST(BalancedProvider, LeastBusyPrefersTheIdleDeploymentWhileAStreamIsHeld) {
  FakeDeployment a("a");
  FakeDeployment b("b");
  BalancedProvider balanced("m", {{&a, "m", 1, nullptr}, {&b, "m", 1, nullptr}}, BalancePolicy::kLeastBusy);
  auto held = RunTask(Open(balanced));  // both idle: the round-robin picks a
  ASSERT_TRUE(held);
  EXPECT_EQ(a.calls(), 1);
  EXPECT_EQ(balanced.InFlight(), (std::vector<int>{1, 0}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(RunTask(Answer(balanced)), "b:m");  // a is busy meanwhile
  EXPECT_EQ(a.calls(), 1);
  EXPECT_EQ(b.calls(), 3);

  held->reset();  // the stream's end frees a: equally busy again, the round-robin decides
  EXPECT_EQ(balanced.InFlight(), (std::vector<int>{0, 0}));
  RunTask(Answer(balanced));
  RunTask(Answer(balanced));
  EXPECT_EQ(a.calls() + b.calls(), 6);
  EXPECT_EQ(a.calls(), 2);
}

TEST(BalancedProvider, SkipsADeploymentWhoseBreakerIsOpenUntilItsCooldownEnds) {
  auto now = CircuitBreaker::Clock::now();
  CircuitBreaker breaker({.failures = 1, .cooldown = milliseconds(1000)}, [&] { return now; });
  ASSERT_TRUE(breaker.Allow());
  ASSERT_TRUE(breaker.OnFailure());  // open
  FakeDeployment broken("broken");
  FakeDeployment healthy("healthy");
  BalancedProvider balanced("m", {{&broken, "m", 5, &breaker}, {&healthy, "m", 1, nullptr}}, BalancePolicy::kWeighted);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(RunTask(Answer(balanced)), "healthy:m");
  EXPECT_EQ(broken.calls(), 0);

  now += milliseconds(1000);  // half-open: one probe may go, and its weight wins the turn
  EXPECT_EQ(RunTask(Answer(balanced)), "broken:m");
}

TEST(BalancedProvider, AllBreakersOpenStillAsksEachOnce) {
  auto now = CircuitBreaker::Clock::now();
  CircuitBreaker breaker({.failures = 1, .cooldown = milliseconds(1000)}, [&] { return now; });
  ASSERT_TRUE(breaker.Allow());
  ASSERT_TRUE(breaker.OnFailure());
  FakeDeployment a("a", {Failure(ErrorCode::kUpstreamUnavailable)});
  FakeDeployment b("b", {Failure(ErrorCode::kUpstreamUnavailable)});
  BalancedProvider balanced("m", {{&a, "m", 1, &breaker}, {&b, "m", 1, &breaker}}, BalancePolicy::kWeighted);
  EXPECT_EQ(RunTask(Answer(balanced)), "error: scripted failure");
  EXPECT_EQ(a.calls() + b.calls(), 2);  // (a ResilientProvider would refuse each at once)
}

TEST(BalancedProvider, FailsOverToTheNextDeploymentBeforeTheModelsFallbacks) {
  FakeDeployment first("first", {Failure(ErrorCode::kUpstreamUnavailable)});  // a 500 after its retries
  FakeDeployment second("second");
  FakeDeployment fallback("fallback");
  BalancedProvider balanced("m", {{&first, "m1", 1, nullptr}, {&second, "m2", 1, nullptr}}, BalancePolicy::kWeighted);
  FallbackChain chain({{&balanced, "m", "m"}, {&fallback, "f", "f"}});
  EXPECT_EQ(RunTask(Answer(chain)), "second:m2");
  EXPECT_EQ(first.calls(), 1);
  EXPECT_EQ(fallback.calls(), 0);
  EXPECT_EQ(balanced.InFlight(), (std::vector<int>{0, 0}));

  // Both deployments down: now the fallback.
  FakeDeployment down1("down1", {Failure(ErrorCode::kUpstreamTimeout)});
  FakeDeployment down2("down2", {Failure(ErrorCode::kUpstreamUnavailable)});
  BalancedProvider both("m", {{&down1, "m", 1, nullptr}, {&down2, "m", 1, nullptr}}, BalancePolicy::kLeastBusy);
  FallbackChain rescued({{&both, "m", "m"}, {&fallback, "f", "f"}});
  EXPECT_EQ(RunTask(Answer(rescued)), "fallback:f");
  EXPECT_EQ(down1.calls() + down2.calls(), 2);
}

TEST(BalancedProvider, AnInvalidRequestIsNotTriedElsewhere) {
  FakeDeployment picky("picky", {Failure(ErrorCode::kInvalidArgument)});
  FakeDeployment other("other");
  BalancedProvider balanced("m", {{&picky, "m", 1, nullptr}, {&other, "m", 1, nullptr}}, BalancePolicy::kWeighted);
  EXPECT_EQ(RunTask(Answer(balanced)), "error: scripted failure");
  EXPECT_EQ(other.calls(), 0);
}

TEST(BalancedProvider, EmbeddingsAndCompletionsAreBalancedToo) {
  FakeDeployment a("a", {Failure(ErrorCode::kRateLimited)});
  FakeDeployment b("b");
  BalancedProvider balanced("e", {{&a, "e-a", 1, nullptr}, {&b, "e-b", 1, nullptr}}, BalancePolicy::kWeighted);
  const EmbeddingRequest embed{.model = "x", .input = {"text"}, .dimensions = {}};
  auto vectors = RunTask(balanced.Embed(embed));
  ASSERT_TRUE(vectors) << vectors.error().message;
  EXPECT_EQ(vectors->model, "b:e-b");  // a was tried first and failed over

  // Complete: the fake's default synthesizes OpenAI's JSON from its stream.
  CompletionRequest completion;
  completion.fields = std::make_shared<const std::string>(R"("messages":[{"role":"user","content":"hi"}])");
  auto body = RunTask([&]() -> Task<std::string> {
    auto response = co_await balanced.Complete(completion);
    if (!response) co_return "error: " + response.error().message;
    EXPECT_EQ(balanced.InFlight(), (std::vector<int>{0, 1}));  // held while the response lives
    std::string text;
    for (;;) {
      auto piece = co_await (*response)->Read();
      if (!piece || !*piece) break;
      text += **piece;
    }
    co_return text;
  }());
  EXPECT_NE(body.find("b:e-b"), std::string::npos) << body;  // the round-robin's next turn is b
  EXPECT_EQ(balanced.InFlight(), (std::vector<int>{0, 0}));
}

TEST(BalancedProvider, RefusesNoDeploymentsAndZeroWeights) {
  FakeDeployment a("a");
  EXPECT_THROW(BalancedProvider("m", {}, BalancePolicy::kWeighted), std::invalid_argument);
  EXPECT_THROW(BalancedProvider("m", {{&a, "m", 0, nullptr}}, BalancePolicy::kWeighted), std::invalid_argument);
}

// ------------------------------------------------------------------------- the router

TEST(Router, RegistersABalancedModelWithItsAliasesAndFallbacks) {
  auto client = http::Client::Create({});
  ASSERT_TRUE(client);
  RouterConfig config;
  for (const char* name : {"east", "west"}) {
    config.upstreams.push_back(UpstreamConfig{.api = {.name = name, .base_url = "http://127.0.0.1:9/v1"}});
  }
  config.models.push_back(ModelConfig{.name = "gpt",
                                      .deployments = {{.provider = "east", .upstream_model = "gpt-e", .weight = 3},
                                                      {.provider = "west", .upstream_model = "", .weight = 1}},
                                      .balance = BalancePolicy::kLeastBusy,
                                      .aliases = {"gpt-latest", "g"},
                                      .fallbacks = {"demo"}});
  Router router(std::move(config), **client);
  DemoProvider demo(DemoConfig{.token_interval = milliseconds(0)});
  ModelRegistry registry;
  for (const auto& model : DemoProvider::Models()) ASSERT_TRUE(registry.Add(demo, model));
  ASSERT_TRUE(router.Register(registry));

  auto gpt = registry.Resolve("gpt-latest");
  ASSERT_TRUE(gpt);
  EXPECT_EQ(gpt->info.id, "gpt");
  EXPECT_EQ(gpt->info.provider, "east+west");
  EXPECT_EQ(gpt->provider.name(), "east+west");

  // An alias that is taken (here by a demo model) stops the registration, naming the model.
  RouterConfig clash;
  clash.upstreams.push_back(UpstreamConfig{.api = {.name = "east", .base_url = "http://127.0.0.1:9/v1"}});
  clash.models.push_back(ModelConfig{.name = "other", .provider = "east", .aliases = {"demo"}});
  Router clashing(std::move(clash), **client);
  auto refused = clashing.Register(registry);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("model 'other': aliases"), std::string::npos) << refused.error().message;

  // A deployment on an unknown provider is named.
  RouterConfig unknown;
  unknown.upstreams.push_back(UpstreamConfig{.api = {.name = "east", .base_url = "http://127.0.0.1:9/v1"}});
  unknown.models.push_back(ModelConfig{.name = "lost", .deployments = {{.provider = "east"}, {.provider = "nowhere"}}});
  Router lost(std::move(unknown), **client);
  auto missing = lost.Register(registry);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("model 'lost' names provider 'nowhere'"), std::string::npos);
}

}  // namespace
}  // namespace chatd::llm
