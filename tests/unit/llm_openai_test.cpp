// The OpenAI-compatible provider and the router: the SSE parser, error mapping, the
// circuit breaker, retries and fallbacks (with a scripted provider), and the provider
// itself against chatd's own http::Server on loopback playing the upstream.
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "run_task.hpp"

#include "core/metrics.hpp"
#include "http/client.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "llm/circuit_breaker.hpp"
#include "llm/demo_provider.hpp"
#include "llm/openai_provider.hpp"
#include "llm/router.hpp"
#include "llm/sse_parser.hpp"

namespace chatd::llm {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

using chatd::testing::RunTask;

std::vector<SseEvent> ParseAll(SseParser& parser, const std::vector<std::string>& pieces) {
  std::vector<SseEvent> events;
  for (const std::string& piece : pieces) {
    EXPECT_TRUE(parser.Feed(piece));
    while (auto event = parser.Next()) events.push_back(std::move(*event));
  }
  return events;
}

// ------------------------------------------------------------------------------ SSE

TEST(SseParser, JoinsEventsCutAnywhere) {
  const std::string stream =
      ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\nevent: ping\ndata: line one\ndata: line two\nid: 7\n\n"
      "data:no-space\r\rdata: [DONE]\n\n";
  // Every way of cutting the stream in two gives the same events (CRLF split included).
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser parser;
    const auto events = ParseAll(parser, {stream.substr(0, cut), stream.substr(cut)});
    ASSERT_EQ(events.size(), 4u) << "cut at " << cut;
    EXPECT_EQ(events[0].data, "{\"a\":1}");
    EXPECT_EQ(events[1].event, "ping");
    EXPECT_EQ(events[1].data, "line one\nline two");
    EXPECT_EQ(events[1].id, "7");
    EXPECT_EQ(events[2].data, "no-space");
    EXPECT_EQ(events[3].data, "[DONE]");
  }
  // Byte by byte, too.
  SseParser parser;
  std::vector<std::string> bytes;
  for (char c : stream) bytes.emplace_back(1, c);
  EXPECT_EQ(ParseAll(parser, bytes).size(), 4u);
}

TEST(SseParser, AnEventWithoutDataIsDroppedAndAnUnfinishedOneWaits) {
  SseParser parser;
  EXPECT_TRUE(ParseAll(parser, {"event: nothing\nretry: 5\n\n", "data: half"}).empty());
  EXPECT_EQ(ParseAll(parser, {"\n\n"}).at(0).data, "half");
}

TEST(SseParser, RefusesAnOversizedEvent) {
  SseParser parser(64);
  EXPECT_TRUE(parser.Feed("data: " + std::string(40, 'x') + "\n"));
  const auto fed = parser.Feed("data: " + std::string(40, 'y'));
  ASSERT_FALSE(fed);
  EXPECT_EQ(fed.error().code, ErrorCode::kUpstreamUnavailable);
}

// ------------------------------------------------------------------------ errors map

TEST(UpstreamError, MapsStatusesAndKeepsSafeMessages) {
  const Error rejected = UpstreamError("openai", 400, R"({"error":{"message":"max_tokens is too large"}})", "", "");
  EXPECT_EQ(rejected.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(rejected.message.find("max_tokens is too large"), std::string::npos);

  const Error ollama = UpstreamError("ollama", 404, R"({"error":"model 'x' not found"})", "", "");
  EXPECT_EQ(ollama.code, ErrorCode::kNotFound);
  EXPECT_NE(ollama.message.find("model 'x' not found"), std::string::npos);

  const Error credentials = UpstreamError("openai", 401, R"({"error":{"message":"Incorrect API key sk-abc"}})", "", "");
  EXPECT_EQ(credentials.code, ErrorCode::kInternal);
  EXPECT_EQ(credentials.message.find("sk-abc"), std::string::npos);  // never echoed

  const Error limited = UpstreamError("openai", 429, "not json", "3", "");
  EXPECT_EQ(limited.code, ErrorCode::kRateLimited);
  EXPECT_EQ(limited.retry_after, milliseconds(3000));
  EXPECT_EQ(UpstreamError("openai", 429, "", "3", "1500").retry_after, milliseconds(1500));
  EXPECT_EQ(UpstreamError("openai", 503, "", "Wed, 21 Oct 2015 07:28:00 GMT", "").retry_after, milliseconds(0));

  EXPECT_EQ(UpstreamError("x", 500, "", "", "").code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(UpstreamError("x", 502, "<html>", "", "").message, "x failed (HTTP 502)");
  EXPECT_EQ(UpstreamError("x", 408, "", "", "").code, ErrorCode::kUpstreamTimeout);
  const Error long_message = UpstreamError("x", 400, R"({"message":")" + std::string(1000, 'm') + R"("})", "", "");
  EXPECT_LT(long_message.message.size(), 400u);
}

// ------------------------------------------------------------------- circuit breaker

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresThenProbes) {
  auto now = steady_clock::now();
  CircuitBreaker breaker({.failures = 3, .cooldown = milliseconds(1000)}, [&] { return now; });
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(breaker.Allow());
    EXPECT_FALSE(breaker.OnFailure());
  }
  ASSERT_TRUE(breaker.Allow());
  breaker.OnSuccess();  // a success resets the count
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(breaker.Allow());
    breaker.OnFailure();
  }
  ASSERT_TRUE(breaker.Allow());
  EXPECT_TRUE(breaker.OnFailure());
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kOpen);
  EXPECT_FALSE(breaker.Allow());
  EXPECT_EQ(breaker.RemainingCooldown(), milliseconds(1000));

  now += milliseconds(1000);
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kHalfOpen);
  ASSERT_TRUE(breaker.Allow());   // the probe
  EXPECT_FALSE(breaker.Allow());  // one at a time
  EXPECT_TRUE(breaker.OnFailure());  // a failed probe opens it again
  EXPECT_FALSE(breaker.Allow());

  now += milliseconds(1000);
  ASSERT_TRUE(breaker.Allow());
  breaker.OnNeutral();  // an invalid request says nothing: the next call probes
  ASSERT_TRUE(breaker.Allow());
  breaker.OnSuccess();
  EXPECT_EQ(breaker.state(), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(breaker.Allow());
}

// -------------------------------------------------------------- retries, fallbacks

// Fails with the scripted errors in order, then streams one chunk; records the models asked.
class ScriptedProvider final : public Provider {
 public:
  explicit ScriptedProvider(std::string name, std::deque<Error> failures = {})
      : name_(std::move(name)), failures_(std::move(failures)) {}
  std::string_view name() const override { return name_; }

  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override {
    models_.push_back(request.model);
    limits_.push_back(request.limits);
    if (!failures_.empty()) {
      Error error = failures_.front();
      failures_.pop_front();
      co_return Unexpected{std::move(error)};
    }
    ChatRequest demo_request = request;
    demo_request.model = "demo";
    co_return co_await demo_.StreamChat(demo_request);
  }
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override {
    models_.push_back(request.model);
    if (!failures_.empty()) {
      Error error = failures_.front();
      failures_.pop_front();
      co_return Unexpected{std::move(error)};
    }
    co_return Embeddings{.vectors = {{1.0f}}, .usage = {}, .model = request.model};
  }

  const std::vector<std::string>& models() const { return models_; }
  const std::vector<CallLimits>& limits() const { return limits_; }

 private:
  std::string name_;
  std::deque<Error> failures_;
  std::vector<std::string> models_;
  std::vector<CallLimits> limits_;
  DemoProvider demo_{DemoConfig{.token_interval = milliseconds(0)}};
};

// Opens a stream and drops it at once, inside the io_context it belongs to: the error, if any.
Task<std::optional<Error>> Open(Provider& provider, const ChatRequest& request) {
  auto stream = co_await provider.StreamChat(request);
  if (!stream) co_return stream.error();
  co_return std::nullopt;
}

ChatRequest Hello(std::string model = "m") {
  ChatRequest request;
  request.model = std::move(model);
  request.messages = {{"user", "hello"}};
  return request;
}

Error Failure(ErrorCode code, milliseconds retry_after = milliseconds(0)) {
  Error error{code, "scripted failure"};
  error.retry_after = retry_after;
  return error;
}

const RetryPolicy kFastRetries{.retries = 2, .backoff = milliseconds(10), .max_backoff = milliseconds(40),
                               .max_retry_after = milliseconds(1000)};

TEST(ResilientProvider, RetriesConnectionErrors429And5xxThenSucceeds) {
  ScriptedProvider upstream("up", {Failure(ErrorCode::kUpstreamUnavailable), Failure(ErrorCode::kRateLimited)});
  ResilientProvider resilient(upstream, kFastRetries, {.failures = 10});
  const ChatRequest request = Hello();
  const auto failed = RunTask(Open(resilient, request));
  ASSERT_FALSE(failed) << failed->message;
  EXPECT_EQ(upstream.models().size(), 3u);
  EXPECT_EQ(resilient.breaker().state(), CircuitBreaker::State::kClosed);
}

TEST(ResilientProvider, GivesUpAfterItsRetriesAndNeverRetriesInvalidRequests) {
  ScriptedProvider failing("up", std::deque<Error>(5, Failure(ErrorCode::kUpstreamTimeout)));
  ResilientProvider resilient(failing, kFastRetries, {.failures = 10});
  const ChatRequest request = Hello();
  const auto failed = RunTask(Open(resilient, request));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(failing.models().size(), 3u);  // 1 + 2 retries

  ScriptedProvider invalid("up", {Failure(ErrorCode::kInvalidArgument)});
  ResilientProvider once(invalid, kFastRetries, {.failures = 10});
  EXPECT_TRUE(RunTask(Open(once, request)));
  EXPECT_EQ(invalid.models().size(), 1u);
}

TEST(ResilientProvider, AModelsOwnRetriesReplaceTheUpstreams) {
  ChatRequest request = Hello();
  request.limits.retries = 0;
  ScriptedProvider strict("up", std::deque<Error>(5, Failure(ErrorCode::kUpstreamUnavailable)));
  ResilientProvider once(strict, kFastRetries, {.failures = 10});
  EXPECT_TRUE(RunTask(Open(once, request)));
  EXPECT_EQ(strict.models().size(), 1u);  // the upstream's 2 retries do not apply

  request.limits.retries = 4;
  ScriptedProvider persistent("up", std::deque<Error>(4, Failure(ErrorCode::kUpstreamUnavailable)));
  ResilientProvider patient(persistent, kFastRetries, {.failures = 10});
  EXPECT_FALSE(RunTask(Open(patient, request)));
  EXPECT_EQ(persistent.models().size(), 5u);  // 1 + the model's 4 retries
}

TEST(ResilientProvider, HonoursRetryAfterUpToItsCap) {
  ScriptedProvider upstream("up", {Failure(ErrorCode::kRateLimited, milliseconds(300))});
  ResilientProvider resilient(upstream, kFastRetries, {.failures = 10});
  const ChatRequest request = Hello();
  const auto started = steady_clock::now();
  ASSERT_FALSE(RunTask(Open(resilient, request)));
  EXPECT_GE(steady_clock::now() - started, milliseconds(300));

  ScriptedProvider impatient("up", {Failure(ErrorCode::kRateLimited, milliseconds(5000))});
  ResilientProvider capped(impatient, kFastRetries, {.failures = 10});
  const auto again = steady_clock::now();
  const auto refused = RunTask(Open(capped, request));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, ErrorCode::kRateLimited);
  EXPECT_LT(steady_clock::now() - again, milliseconds(1000));  // not waited for: over the cap
  EXPECT_EQ(impatient.models().size(), 1u);
}

TEST(ResilientProvider, AnOpenBreakerRefusesWithoutCallingTheUpstream) {
  ScriptedProvider upstream("up", std::deque<Error>(10, Failure(ErrorCode::kUpstreamUnavailable)));
  ResilientProvider resilient(upstream, RetryPolicy{.retries = 0}, {.failures = 2, .cooldown = milliseconds(60'000)});
  const ChatRequest request = Hello();
  EXPECT_TRUE(RunTask(Open(resilient, request)));
  EXPECT_TRUE(RunTask(Open(resilient, request)));
  const auto refused = RunTask(Open(resilient, request));
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->message.find("circuit breaker open"), std::string::npos);
  EXPECT_EQ(upstream.models().size(), 2u);
}

TEST(FallbackChain, TriesTheNextModelWhenOneFailsBeforeTheFirstToken) {
  ScriptedProvider primary("a", {Failure(ErrorCode::kUpstreamUnavailable)});
  ScriptedProvider backup("b");
  FallbackChain chain({{&primary, "model-a", "a"}, {&backup, "model-b", "b"}});
  EXPECT_EQ(chain.name(), "a");
  const ChatRequest request = Hello("ignored");
  EXPECT_FALSE(RunTask(Open(chain, request)));
  EXPECT_EQ(primary.models(), std::vector<std::string>{"model-a"});
  EXPECT_EQ(backup.models(), std::vector<std::string>{"model-b"});

  // Each candidate is called with its own model's limits, not the one before it.
  ScriptedProvider slow("a", {Failure(ErrorCode::kUpstreamTimeout)});
  ScriptedProvider quick("b");
  const CallLimits patient{.first_byte_timeout = milliseconds(90'000), .idle_timeout = {}, .retries = 0};
  FallbackChain limited({{&slow, "model-a", "a", patient}, {&quick, "model-b", "b", {}}});
  EXPECT_FALSE(RunTask(Open(limited, request)));
  ASSERT_EQ(slow.limits().size(), 1u);
  EXPECT_EQ(slow.limits()[0].first_byte_timeout, milliseconds(90'000));
  EXPECT_EQ(slow.limits()[0].retries, 0);
  ASSERT_EQ(quick.limits().size(), 1u);
  EXPECT_FALSE(quick.limits()[0].first_byte_timeout || quick.limits()[0].retries);

  // An invalid request would fail anywhere: no fallback.
  ScriptedProvider picky("a", {Failure(ErrorCode::kInvalidArgument)});
  ScriptedProvider unused("b");
  FallbackChain strict({{&picky, "model-a", "a"}, {&unused, "model-b", "b"}});
  EXPECT_TRUE(RunTask(Open(strict, request)));
  EXPECT_TRUE(unused.models().empty());

  // Embeddings fall back the same way.
  ScriptedProvider down("a", {Failure(ErrorCode::kUpstreamTimeout)});
  ScriptedProvider up("b");
  FallbackChain embeddings({{&down, "e-a", "a"}, {&up, "e-b", "b"}});
  const EmbeddingRequest embed{.model = "x", .input = {"text"}, .dimensions = {}};
  auto vectors = RunTask(embeddings.Embed(embed));
  ASSERT_TRUE(vectors);
  EXPECT_EQ(vectors->model, "e-b");
}

// ------------------------------------------------------ the provider over real HTTP

// chatd's own server playing an OpenAI-compatible upstream; tests script the handler.
class FakeUpstream {
 public:
  using Handler = std::function<Task<http::Response>(http::Request&)>;

  FakeUpstream() {
    router_.Add(http::Method::kPost, "/v1/chat/completions", [this](http::Request& r) { return Dispatch(r); });
    router_.Add(http::Method::kPost, "/v1/embeddings", [this](http::Request& r) { return Dispatch(r); });
    router_.Add(http::Method::kGet, "/v1/models", [this](http::Request& r) { return Dispatch(r); });
    http::ServerConfig config;
    config.port = 0;
    config.io_threads = 1;
    config.access_log = false;
    config.shutdown_timeout = milliseconds(2000);
    server_ = std::make_unique<http::Server>(config, router_, http::MiddlewareChain{}, metrics_);
    EXPECT_TRUE(server_->Listen());
    thread_ = std::thread([this] { server_->Run(); });
  }
  ~FakeUpstream() {
    server_->Shutdown();
    thread_.join();
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(server_->port()) + "/v1"; }
  void Handle(Handler handler) {
    std::lock_guard lock(mutex_);
    handler_ = std::move(handler);
  }
  std::string last_body() {
    std::lock_guard lock(mutex_);
    return last_body_;
  }
  std::string last_authorization() {
    std::lock_guard lock(mutex_);
    return last_authorization_;
  }

 private:
  Task<http::Response> Dispatch(http::Request& request) {
    Handler handler;
    {
      std::lock_guard lock(mutex_);
      handler = handler_;
      last_body_ = request.body;
      last_authorization_ = std::string(request.Header("Authorization"));
    }
    co_return co_await handler(request);
  }

  metrics::Registry metrics_;
  http::Router router_;
  std::unique_ptr<http::Server> server_;
  std::thread thread_;
  std::mutex mutex_;
  Handler handler_;
  std::string last_body_;
  std::string last_authorization_;
};

// Streams `pieces` as the body of an event stream, each its own chunk.
FakeUpstream::Handler StreamPieces(std::vector<std::string> pieces, milliseconds gap = milliseconds(0)) {
  return [pieces = std::move(pieces), gap](http::Request& request) -> Task<http::Response> {
    http::Response head(200, {}, "text/event-stream");
    if (!co_await request.stream->Begin(std::move(head))) co_return http::Response{};
    for (const std::string& piece : pieces) {
      if (gap.count() > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor, gap);
        co_await timer.async_wait(kUseAwaitable);
      }
      if (!co_await request.stream->Write(piece)) break;
    }
    co_return http::Response{};
  };
}

std::string Chunk(std::string_view content, std::string_view finish = "") {
  std::string json = R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":")" +
                     std::string(content) + R"("},"finish_reason":)" +
                     (finish.empty() ? std::string("null") : "\"" + std::string(finish) + "\"") + "}]}";
  return "data: " + json + "\n\n";
}

struct Drained {
  std::string text;
  std::string finish_reason;
  std::optional<Usage> usage;
  std::optional<Error> error;
  int chunks = 0;
};

Task<Drained> Drain(Provider& provider, const ChatRequest& request) {
  Drained out;
  auto stream = co_await provider.StreamChat(request);
  if (!stream) {
    out.error = stream.error();
    co_return out;
  }
  while (true) {
    auto chunk = co_await (*stream)->Next();
    if (!chunk) {
      out.error = chunk.error();
      break;
    }
    if (!*chunk) break;
    ++out.chunks;
    out.text += (*chunk)->delta;
    if (!(*chunk)->finish_reason.empty()) out.finish_reason = (*chunk)->finish_reason;
    if ((*chunk)->usage) out.usage = (*chunk)->usage;
  }
  (*stream)->Cancel();  // safe after the end, and changes nothing
  if (!out.error) {
    auto after = co_await (*stream)->Next();
    EXPECT_FALSE(after);
  }
  co_return out;
}

class OpenAiProviderTest : public ::testing::Test {
 protected:
  OpenAiProviderTest() {
    auto client = http::Client::Create({});
    client_ = std::move(*client);
    provider_ = std::make_unique<OpenAiProvider>(
        OpenAiConfig{.name = "fake", .base_url = upstream_.base_url() + "/", .api_key = "sk-test"}, *client_);
  }

  ChatRequest Request() {
    ChatRequest request = Hello("gpt-test");
    request.temperature = 0.5;
    request.max_tokens = 64;
    request.first_byte_timeout = milliseconds(2000);
    request.idle_timeout = milliseconds(2000);
    return request;
  }

  FakeUpstream upstream_;
  std::unique_ptr<http::Client> client_;
  std::unique_ptr<OpenAiProvider> provider_;
};

TEST_F(OpenAiProviderTest, StreamsDeltasThenOneLastChunkWithFinishReasonAndUsage) {
  const std::string usage =
      R"(data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}})" "\n\n";
  const std::string all = Chunk("") + ": keep-alive\n\n" + Chunk("Hel") + Chunk("lo ") + Chunk("world") +
                          Chunk("", "stop") + usage + "data: [DONE]\n\n";
  // Cut at awkward places: inside "data:", inside the JSON, between CR and LF.
  upstream_.Handle(StreamPieces({all.substr(0, 3), all.substr(3, 50), all.substr(53, 101), all.substr(154)}));
  const ChatRequest request = Request();
  const Drained got = RunTask(Drain(*provider_, request));
  ASSERT_FALSE(got.error) << got.error->message;
  EXPECT_EQ(got.text, "Hello world");
  EXPECT_EQ(got.finish_reason, "stop");
  ASSERT_TRUE(got.usage);
  EXPECT_EQ(got.usage->prompt_tokens, 9);
  EXPECT_EQ(got.usage->completion_tokens, 3);
  EXPECT_EQ(got.chunks, 4);  // three deltas, then the last chunk

  const std::string sent = upstream_.last_body();
  for (const char* part : {R"("model":"gpt-test")", R"("stream":true)", R"("stream_options":{"include_usage":true})",
                           R"("temperature":0.5)", R"("max_tokens":64)", R"({"role":"user","content":"hello"})"}) {
    EXPECT_NE(sent.find(part), std::string::npos) << part << " in " << sent;
  }
  EXPECT_EQ(upstream_.last_authorization(), "Bearer sk-test");
}

TEST_F(OpenAiProviderTest, AStreamEndingWithoutDoneAfterFinishIsComplete) {
  upstream_.Handle(StreamPieces({Chunk("a"), Chunk("b", "length")}));
  const ChatRequest request = Request();
  const Drained got = RunTask(Drain(*provider_, request));
  ASSERT_FALSE(got.error) << got.error->message;
  EXPECT_EQ(got.text, "ab");
  EXPECT_EQ(got.finish_reason, "length");
  EXPECT_FALSE(got.usage);
}

TEST_F(OpenAiProviderTest, AStreamCutShortOrCarryingAnErrorFails) {
  upstream_.Handle(StreamPieces({Chunk("a")}));
  const ChatRequest request = Request();
  Drained got = RunTask(Drain(*provider_, request));
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(got.text, "a");

  upstream_.Handle(StreamPieces({Chunk("a"), "data: {\"error\":{\"message\":\"overloaded\"}}\n\n"}));
  got = RunTask(Drain(*provider_, request));
  ASSERT_TRUE(got.error);
  EXPECT_NE(got.error->message.find("overloaded"), std::string::npos);
}

TEST_F(OpenAiProviderTest, ErrorAnswersComeBackFromStreamChat) {
  upstream_.Handle([](http::Request&) -> Task<http::Response> {
    http::Response response = http::Response::Json(429, R"({"error":{"message":"slow down"}})");
    response.AddHeader("Retry-After", "2");
    co_return response;
  });
  const ChatRequest request = Request();
  const auto failed = RunTask(Open(*provider_, request));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->code, ErrorCode::kRateLimited);
  EXPECT_EQ(failed->retry_after, milliseconds(2000));
  EXPECT_NE(failed->message.find("slow down"), std::string::npos);
}

TEST_F(OpenAiProviderTest, IdleTimeoutCountsEventsNotKeepAliveComments) {
  // Comments every 50 ms but no token after the first: the idle timeout still fires.
  std::vector<std::string> pieces{Chunk("first")};
  for (int i = 0; i < 40; ++i) pieces.push_back(": ping\n\n");
  upstream_.Handle(StreamPieces(pieces, milliseconds(50)));
  ChatRequest request = Request();
  request.idle_timeout = milliseconds(300);
  const auto started = steady_clock::now();
  const Drained got = RunTask(Drain(*provider_, request));
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(got.error->message, "no token from fake within 300 ms");
  EXPECT_EQ(got.text, "first");
  EXPECT_LT(steady_clock::now() - started, milliseconds(1500));
}

TEST_F(OpenAiProviderTest, AModelsIdleTimeoutReplacesTheUpstreams) {
  std::vector<std::string> pieces{Chunk("first")};
  for (int i = 0; i < 40; ++i) pieces.push_back(": ping\n\n");
  upstream_.Handle(StreamPieces(pieces, milliseconds(50)));
  OpenAiProvider patient_upstream(
      OpenAiConfig{.name = "fake", .base_url = upstream_.base_url(), .idle_timeout = milliseconds(10'000)}, *client_);
  ChatRequest request = Request();
  request.limits.idle_timeout = milliseconds(300);
  const Drained got = RunTask(Drain(patient_upstream, request));
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->message, "no token from fake within 300 ms");
}

TEST_F(OpenAiProviderTest, CancelEndsAPendingNextPromptly) {
  std::vector<std::string> pieces;
  for (int i = 0; i < 100; ++i) pieces.push_back(Chunk("x"));
  upstream_.Handle(StreamPieces(pieces, milliseconds(100)));
  const ChatRequest request = Request();
  const auto started = steady_clock::now();
  const std::string got = RunTask([&]() -> Task<std::string> {
    auto stream = co_await provider_->StreamChat(request);
    if (!stream) co_return stream.error().message;
    ChatStream* open = stream->get();
    asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(250));
    timer.async_wait([open](const boost::system::error_code&) { open->Cancel(); });
    std::string seen;
    while (true) {
      auto chunk = co_await open->Next();
      if (!chunk) co_return seen + "|" + chunk.error().message;
      if (!*chunk) co_return seen + "|end";
      seen += (*chunk)->delta;
    }
  }());
  EXPECT_EQ(got.substr(got.find('|')), "|cancelled");
  EXPECT_LT(steady_clock::now() - started, milliseconds(1000));
}

TEST_F(OpenAiProviderTest, EmbedsAndListsModels) {
  upstream_.Handle([](http::Request& request) -> Task<http::Response> {
    if (request.path == "/v1/models") {
      co_return http::Response::Json(200, R"({"object":"list","data":[{"id":"m1"},{"id":"text-embedding-3-small"}]})");
    }
    co_return http::Response::Json(
        200, R"({"data":[{"index":1,"embedding":[0.5,0.25]},{"index":0,"embedding":[1,0]}],"model":"emb",)"
             R"("usage":{"prompt_tokens":4}})");
  });
  const EmbeddingRequest request{.model = "emb", .input = {"a", "b"}, .dimensions = 2};
  auto embedded = RunTask(provider_->Embed(request));
  ASSERT_TRUE(embedded) << embedded.error().message;
  ASSERT_EQ(embedded->vectors.size(), 2u);
  EXPECT_EQ(embedded->vectors[0], (std::vector<float>{1.0f, 0.0f}));
  EXPECT_EQ(embedded->vectors[1], (std::vector<float>{0.5f, 0.25f}));
  EXPECT_EQ(embedded->usage.prompt_tokens, 4);
  EXPECT_NE(upstream_.last_body().find(R"("dimensions":2)"), std::string::npos);

  auto models = RunTask(provider_->ListModels());
  ASSERT_TRUE(models) << models.error().message;
  EXPECT_EQ(*models, (std::vector<std::string>{"m1", "text-embedding-3-small"}));
}

TEST_F(OpenAiProviderTest, TheRouterRegistersDiscoveredAndConfiguredModelsWithFallbacks) {
  upstream_.Handle([](http::Request& request) -> Task<http::Response> {
    if (request.path == "/v1/models") {
      co_return http::Response::Json(200, R"({"data":[{"id":"listed"},{"id":"whisper-1"},{"id":"text-embedding-3-small"}]})");
    }
    co_return http::Response::Json(500, R"({"error":{"message":"down"}})");
  });
  RouterConfig config;
  config.upstreams.push_back(UpstreamConfig{.api = {.name = "fake", .base_url = upstream_.base_url()},
                                            .retry = {.retries = 0},
                                            .breaker = {},
                                            .discover_models = true});
  config.models.push_back(ModelConfig{.name = "main", .provider = "fake", .upstream_model = "gpt-x",
                                      .context_window = 128000, .fallbacks = {"demo"}});
  Router router(std::move(config), *client_);
  RunTask([&]() -> Task<int> {
    co_await router.Discover();
    co_return 0;
  }());
  DemoProvider demo(DemoConfig{.token_interval = milliseconds(0)});
  ModelRegistry registry;
  for (const auto& model : DemoProvider::Models()) ASSERT_TRUE(registry.Add(demo, model));
  ASSERT_TRUE(router.Register(registry));

  std::vector<std::string> ids;
  for (const auto& model : registry.List()) ids.push_back(model.id);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "listed"), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), "whisper-1"), ids.end());
  auto embedding = registry.Resolve("text-embedding-3-small");
  ASSERT_TRUE(embedding);
  EXPECT_TRUE(embedding->info.embeddings);

  auto main = registry.Resolve("main");
  ASSERT_TRUE(main);
  EXPECT_EQ(main->info.upstream_model, "gpt-x");
  EXPECT_EQ(main->info.context_window, 128000);
  // The upstream answers 500: the chain falls back to the demo model.
  const ChatRequest request = Request();
  const Drained got = RunTask(Drain(main->provider, request));
  ASSERT_FALSE(got.error) << got.error->message;
  EXPECT_NE(got.text.find("You said: \"hello\""), std::string::npos);
  EXPECT_NE(upstream_.last_body().find(R"("model":"gpt-x")"), std::string::npos);

  RouterConfig broken;
  broken.models.push_back(ModelConfig{.name = "x", .provider = "nowhere"});
  Router bad(std::move(broken), *client_);
  auto refused = bad.Register(registry);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("provider 'nowhere'"), std::string::npos);
}

}  // namespace
}  // namespace chatd::llm
