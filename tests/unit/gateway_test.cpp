// The gateway without HTTP: request validation and the upstream fields, the meter (usage,
// stripping, estimates), and whole completions and embeddings through the demo provider
// with recording doubles for the admission/usage seam and the client channel.
#include "gateway/gateway.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "gateway/completion_meter.hpp"
#include "gateway/completion_request.hpp"
#include "gateway/response_cache.hpp"
#include "llm/demo_provider.hpp"
#include "llm/model_registry.hpp"
#include "run_task.hpp"

namespace chatd::gateway {
namespace {

using std::chrono::milliseconds;

using chatd::testing::RunTask;

Error Rejected(std::string_view body) {
  auto prepared = PrepareCompletion(body);
  EXPECT_FALSE(prepared) << body;
  if (prepared) return {};
  EXPECT_EQ(prepared.error().code, ErrorCode::kInvalidArgument) << body;
  return prepared.error();
}

std::string ParamOf(std::string_view body) { return Rejected(body).param; }

constexpr std::string_view kHello = R"({"model":"demo","messages":[{"role":"user","content":"hi"}]})";

// ---------------------------------------------------------------- validation

TEST(GatewayRequest, AcceptsTheFullOpenAiSchema) {
  const std::string body = R"({
    "model": "demo",
    "messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
      {"role": "user", "name": "ann", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": true}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": {"type": "object"}}},
    "stream": true, "stream_options": {"include_usage": false},
    "n": 2, "stop": ["\n\n", "END"], "seed": 42, "logprobs": true, "top_logprobs": 3,
    "temperature": 0.2, "top_p": 1, "max_completion_tokens": 50, "max_tokens": 60,
    "presence_penalty": -1.5, "frequency_penalty": 2, "parallel_tool_calls": false,
    "user": "u-1", "metadata": {"team": "search"}, "x_vendor_knob": {"deep": [1, 2.5, "three"]}
  })";
  auto prepared = PrepareCompletion(body);
  ASSERT_TRUE(prepared) << prepared.error().message << " " << prepared.error().param;
  EXPECT_EQ(prepared->model, "demo");
  EXPECT_TRUE(prepared->stream);
  EXPECT_FALSE(prepared->client_wants_usage);
  EXPECT_EQ(prepared->n, 2);
  EXPECT_EQ(prepared->max_tokens, 50);  // max_completion_tokens wins
  EXPECT_GT(prepared->prompt_tokens_estimate, 85);  // the image counts
}

TEST(GatewayRequest, NamesTheOffendingField) {
  EXPECT_EQ(ParamOf(R"({"messages":[{"role":"user","content":"hi"}]})"), "model");
  EXPECT_EQ(ParamOf(R"({"model":7,"messages":[{"role":"user","content":"hi"}]})"), "model");
  EXPECT_EQ(ParamOf(R"({"model":"demo"})"), "messages");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[]})"), "messages");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":{"role":"user"}})"), "messages");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":["hi"]})"), "messages[0]");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"content":"hi"}]})"), "messages[0].role");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"wizard","content":"hi"}]})"), "messages[0].role");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"user"}]})"), "messages[0].content");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"user","content":5}]})"), "messages[0].content");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"user","content":[{"type":"video"}]}]})"),
            "messages[0].content[0].type");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})"),
            "messages[0].content[0].image_url.url");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})"),
            "messages[0].content[0].type");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"user","content":"a"},{"role":"tool","content":"x"}]})"),
            "messages[1].tool_call_id");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"assistant"}]})"), "messages[0].content");
  EXPECT_EQ(ParamOf(R"({"model":"demo","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f"}}]}]})"),
            "messages[0].tool_calls[0].function.arguments");
}

TEST(GatewayRequest, ChecksRangesAndCombinations) {
  const auto with = [](std::string_view extra) {
    return std::string(R"({"model":"demo","messages":[{"role":"user","content":"hi"}],)") + std::string(extra) + "}";
  };
  EXPECT_EQ(ParamOf(with(R"("temperature":2.5)")), "temperature");
  EXPECT_EQ(ParamOf(with(R"("temperature":"hot")")), "temperature");
  EXPECT_EQ(ParamOf(with(R"("top_p":1.1)")), "top_p");
  EXPECT_EQ(ParamOf(with(R"("n":0)")), "n");
  EXPECT_EQ(ParamOf(with(R"("n":1.5)")), "n");
  EXPECT_EQ(ParamOf(with(R"("max_tokens":0)")), "max_tokens");
  EXPECT_EQ(ParamOf(with(R"("max_completion_tokens":-3)")), "max_completion_tokens");
  EXPECT_EQ(ParamOf(with(R"("stream_options":{"include_usage":true})")), "stream_options");
  EXPECT_EQ(ParamOf(with(R"("stream":false,"stream_options":{"include_usage":true})")), "stream_options");
  EXPECT_EQ(ParamOf(with(R"("stream":"yes")")), "stream");
  EXPECT_EQ(ParamOf(with(R"("stop":["a","b","c","d","e"])")), "stop");
  EXPECT_EQ(ParamOf(with(R"("top_logprobs":2)")), "top_logprobs");
  EXPECT_EQ(ParamOf(with(R"("tool_choice":"auto")")), "tool_choice");
  EXPECT_EQ(ParamOf(with(R"("tools":[{"type":"function","function":{"name":"has space"}}])")), "tools[0].function.name");
  EXPECT_EQ(ParamOf(with(R"("response_format":{"type":"yaml"})")), "response_format.type");
  EXPECT_EQ(ParamOf(with(R"("response_format":{"type":"json_schema"})")), "response_format.json_schema");
  EXPECT_EQ(ParamOf(with(R"("metadata":{"n":1})")), "metadata.n");
  EXPECT_TRUE(PrepareCompletion(with(R"("max_tokens":2.0,"n":1,"temperature":0)")));
  EXPECT_TRUE(PrepareCompletion(with(R"("stream":true,"stream_options":null)")));
}

TEST(GatewayRequest, RefusesPerRequestUpstreams) {
  for (const std::string_view field : kUpstreamOverrideFields) {
    const std::string body = std::string(R"({"model":"demo","messages":[{"role":"user","content":"hi"}],")") +
                             std::string(field) + R"(":"http://169.254.169.254/"})";
    EXPECT_EQ(ParamOf(body), field);
  }
}

TEST(GatewayRequest, MalformedJsonSaysWhere) {
  const Error error = Rejected(R"({"model":"demo",)");
  EXPECT_NE(error.message.find("line 1"), std::string::npos) << error.message;
  EXPECT_EQ(Rejected("[1,2]").message, "The request body must be a JSON object.");
}

// ---------------------------------------------------------------- upstream fields

simdjson::dom::element ParseFields(simdjson::dom::parser& parser, const PreparedCompletion& prepared, std::string& text) {
  text = "{" + *prepared.fields + "}";
  return parser.parse(text).value();
}

TEST(GatewayRequest, PassesEveryFieldButTheModel) {
  auto prepared = PrepareCompletion(
      R"({"model":"demo","messages":[{"role":"user","content":"h\u00e9\n\"q\""}],"x_vendor":{"a":[1,2.5,null,true]},"seed":-7})");
  ASSERT_TRUE(prepared);
  simdjson::dom::parser parser;
  std::string text;
  const auto fields = ParseFields(parser, *prepared, text);
  EXPECT_TRUE(fields["model"].error() == simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(std::string_view(fields["messages"].at(0)["content"]), "h\xC3\xA9\n\"q\"");
  EXPECT_EQ(simdjson::to_string(fields["x_vendor"]), R"({"a":[1,2.5,null,true]})");
  EXPECT_EQ(int64_t(fields["seed"]), -7);
  EXPECT_TRUE(fields["stream_options"].error() == simdjson::NO_SUCH_FIELD);  // not a stream
}

TEST(GatewayRequest, PassesTheClientsBytesAsWritten) {
  auto prepared = PrepareCompletion(
      "{ \"model\" : \"demo\" ,\n \"messages\":[{\"role\":\"user\",\"content\":\"a } ] , \\\" [ {\"}],\n"
      "\"temperature\" : 1.0e0 , \"x\":[ 1, {\"y\":\"}\"} ],\"z\":null}");
  ASSERT_TRUE(prepared) << prepared.error().message;
  EXPECT_EQ(*prepared->fields,
            R"("messages":[{"role":"user","content":"a } ] , \" [ {"}],"temperature":1.0e0,"x":[ 1, {"y":"}"} ],"z":null)");

  // A key written with escapes is still the key: "model" goes, whatever its spelling.
  auto escaped = PrepareCompletion(R"({"mod\u0065l":"demo","messages":[{"role":"user","content":"hi"}],"seed":1})");
  ASSERT_TRUE(escaped) << escaped.error().message;
  EXPECT_EQ(*escaped->fields, R"("messages":[{"role":"user","content":"hi"}],"seed":1)");
}

TEST(GatewayRequest, AsksForUsageOnEveryStream) {
  auto plain = PrepareCompletion(R"({"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->client_wants_usage);
  simdjson::dom::parser parser;
  std::string text;
  EXPECT_EQ(bool(ParseFields(parser, *plain, text)["stream_options"]["include_usage"]), true);

  auto other = PrepareCompletion(
      R"({"model":"demo","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->client_wants_usage);
  EXPECT_EQ(simdjson::to_string(ParseFields(parser, *other, text)["stream_options"]), R"({"x":1,"include_usage":true})");

  auto asked = PrepareCompletion(
      R"({"model":"demo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(asked);
  EXPECT_TRUE(asked->client_wants_usage);
}

// ---------------------------------------------------------------- meter

TEST(CompletionMeter, StripsTheUsageChunkOnlyWhenTheClientDidNotAsk) {
  constexpr std::string_view kUsage =
      R"({"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}})";
  CompletionMeter quiet(false);
  EXPECT_FALSE(quiet.OnEvent(kUsage).forward);
  const TokenUsage usage = quiet.Usage(100);
  EXPECT_EQ(usage.prompt_tokens, 7);
  EXPECT_EQ(usage.completion_tokens, 3);
  EXPECT_EQ(usage.cached_tokens, 2);
  EXPECT_FALSE(usage.estimated);
  CompletionMeter asked(true);
  EXPECT_TRUE(asked.OnEvent(kUsage).forward);
  // usage:null on ordinary chunks (OpenAI sends it with include_usage) is not a usage chunk
  CompletionMeter nulls(false);
  EXPECT_TRUE(nulls.OnEvent(R"({"choices":[{"index":0,"delta":{"content":"x"}}],"usage":null})").forward);
}

TEST(CompletionMeter, EstimatesWhatWasGeneratedWhenNothingIsReported) {
  CompletionMeter meter(false);
  EXPECT_FALSE(meter.saw_output());
  EXPECT_TRUE(meter.OnEvent(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})").forward);
  EXPECT_FALSE(meter.saw_output());
  meter.OnEvent(R"({"choices":[{"index":0,"delta":{"content":"abcdefgh"}}]})");
  meter.OnEvent(
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}}]})");
  EXPECT_TRUE(meter.saw_output());
  EXPECT_FALSE(meter.finished());
  meter.OnEvent(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})");
  EXPECT_TRUE(meter.finished());
  EXPECT_EQ(meter.finish_reason(), "tool_calls");
  const TokenUsage usage = meter.Usage(12);
  EXPECT_TRUE(usage.estimated);
  EXPECT_EQ(usage.prompt_tokens, 12);
  EXPECT_EQ(usage.completion_tokens, EstimateTokens(11));
  EXPECT_TRUE(meter.OnEvent("[DONE]").done);
}

TEST(CompletionMeter, SeesErrorsAndWholeBodies) {
  CompletionMeter meter(false);
  const auto verdict = meter.OnEvent(R"({"error":{"message":"overloaded","type":"server_error"}})");
  EXPECT_TRUE(verdict.error);
  EXPECT_TRUE(verdict.forward);
  CompletionMeter body(false);
  body.OnBody(R"({"choices":[{"message":{"content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}})");
  EXPECT_EQ(body.Usage(99).prompt_tokens, 5);
  EXPECT_EQ(body.finish_reason(), "stop");
  CompletionMeter unreported(false);
  unreported.OnBody(R"({"choices":[{"message":{"content":"hello world!"},"finish_reason":"stop"}]})");
  EXPECT_EQ(unreported.Usage(4).completion_tokens, 3);
}

// ---------------------------------------------------------------- the service

class RecordingAdmission final : public Admission {
 public:
  Task<Expected<Ticket>> Admit(const Caller& caller, const std::string& model, std::int64_t estimated) override {
    admitted.push_back({model, estimated});
    if (refuse) co_return MakeError(ErrorCode::kRateLimited, "over the key's limit");
    Ticket ticket;
    ticket.id = admitted.size();
    ticket.caller = caller;
    ticket.model = model;
    ticket.reserved_tokens = estimated;
    co_return ticket;
  }
  void Settle(const Ticket& ticket, const TokenUsage& actual, double, UsageStatus status) override {
    settled.push_back({ticket.id, actual, status});
  }
  struct Settled {
    std::uint64_t ticket;
    TokenUsage usage;
    UsageStatus status;
  };
  bool refuse = false;
  std::vector<std::pair<std::string, std::int64_t>> admitted;
  std::vector<Settled> settled;
};

class RecordingSink final : public UsageSink {
 public:
  void Record(UsageEvent event) override { events.push_back(std::move(event)); }
  std::vector<UsageEvent> events;
};

// The client: collects what is written; may leave after `leave_after` writes.
class FakeChannel final : public ClientChannel {
 public:
  Task<bool> BeginEvents() override {
    begun = true;
    co_return true;
  }
  Task<bool> Write(std::string_view bytes) override {
    written += bytes;
    ++writes;
    if (leave_after && writes >= *leave_after && on_gone) {
      auto gone = std::move(on_gone);
      on_gone = nullptr;
      gone();  // the connection closed: the gateway hears it as it would from the server
    }
    co_return true;
  }
  void WatchClient(std::function<void()> callback) override { on_gone = std::move(callback); }
  void AddHeader(std::string name, std::string value) override {
    EXPECT_FALSE(begun) << "headers must come before the stream's head";
    headers.emplace_back(std::move(name), std::move(value));
  }
  std::string Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return {};
  }

  bool begun = false;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string written;
  int writes = 0;
  std::optional<int> leave_after;
  std::function<void()> on_gone;
};

class GatewayServiceTest : public ::testing::Test {
 protected:
  GatewayServiceTest() : demo_(llm::DemoConfig{.token_interval = milliseconds(0), .slow_token_interval = milliseconds(5)}) {
    for (const auto& model : llm::DemoProvider::Models()) EXPECT_TRUE(models_.Add(demo_, model));
  }

  Expected<CompletionOutcome> Complete(std::string_view body, FakeChannel& channel) {
    return RunTask(gateway_.ChatCompletions(caller_, body, channel));
  }

  // The data of every event written, in order.
  static std::vector<std::string> Events(const std::string& written) {
    std::vector<std::string> events;
    std::size_t pos = 0;
    while ((pos = written.find("data: ", pos)) != std::string::npos) {
      const std::size_t end = written.find("\n\n", pos);
      events.push_back(written.substr(pos + 6, end - pos - 6));
      pos = end;
    }
    return events;
  }

  llm::DemoProvider demo_;
  llm::ModelRegistry models_;
  RecordingAdmission admission_;
  RecordingSink sink_;
  ManualClock clock_;
  metrics::Registry registry_;
  llm::CallMetrics metrics_{registry_};
  Gateway gateway_{GatewayConfig{}, models_, admission_, sink_, clock_, metrics_};
  Caller caller_{.user_id = "u1", .api_key_id = "k1"};
  simdjson::dom::parser parser_;
};

TEST_F(GatewayServiceTest, AnswersACompletionInOpenAisShape) {
  FakeChannel channel;
  auto outcome = Complete(R"({"model":"demo","messages":[{"role":"user","content":"hello there"}],"max_tokens":5})",
                          channel);
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_FALSE(outcome->streamed);
  EXPECT_FALSE(channel.begun);
  const auto root = parser_.parse(outcome->body).value();
  EXPECT_EQ(std::string_view(root["object"]), "chat.completion");
  EXPECT_EQ(std::string_view(root["choices"].at(0)["message"]["role"]), "assistant");
  EXPECT_EQ(std::string_view(root["choices"].at(0)["finish_reason"]), "length");
  EXPECT_EQ(int64_t(root["usage"]["completion_tokens"]), 5);
  ASSERT_EQ(admission_.admitted.size(), 1u);
  EXPECT_EQ(admission_.admitted[0].first, "demo");
  EXPECT_GT(admission_.admitted[0].second, 5);  // prompt estimate + max_tokens
  ASSERT_EQ(admission_.settled.size(), 1u);
  EXPECT_EQ(admission_.settled[0].status, UsageStatus::kOk);
  EXPECT_EQ(admission_.settled[0].usage.completion_tokens, 5);
  ASSERT_EQ(sink_.events.size(), 1u);
  const UsageEvent& event = sink_.events[0];
  EXPECT_EQ(event.api_key_id, "k1");
  EXPECT_EQ(event.user_id, "u1");
  EXPECT_EQ(event.model, "demo");
  EXPECT_EQ(event.provider, "demo");
  EXPECT_EQ(event.status, UsageStatus::kOk);
  EXPECT_EQ(event.created_at, clock_.Now());
  EXPECT_FALSE(event.ttft_ms);
  // The call is counted with the chat turn's model-call metrics.
  const std::string exposition = registry_.Render();
  EXPECT_NE(exposition.find(R"(llm_requests_total{provider="demo",model="demo",status="ok"} 1)"), std::string::npos)
      << exposition;
  EXPECT_NE(exposition.find(R"(llm_tokens_total{type="completion"} 5)"), std::string::npos) << exposition;
}

TEST_F(GatewayServiceTest, StreamsChunksThenDoneAndStripsTheUsageItAskedFor) {
  FakeChannel channel;
  auto outcome = Complete(R"({"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]})", channel);
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_TRUE(outcome->streamed);
  EXPECT_TRUE(channel.begun);
  const auto events = Events(channel.written);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const auto chunk = parser_.parse(events[i]).value();
    EXPECT_EQ(std::string_view(chunk["object"]), "chat.completion.chunk");
    EXPECT_TRUE(chunk["usage"].error() == simdjson::NO_SUCH_FIELD) << events[i];
    std::string_view content;
    if (chunk["choices"].at(0)["delta"]["content"].get(content) == simdjson::SUCCESS) text += content;
  }
  EXPECT_NE(text.find("You said: \"hi\""), std::string::npos) << text;
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.events[0].status, UsageStatus::kOk);
  EXPECT_FALSE(sink_.events[0].usage.estimated);  // the demo reported it
  EXPECT_TRUE(sink_.events[0].ttft_ms);
}

TEST_F(GatewayServiceTest, KeepsTheUsageChunkWhenAskedFor) {
  FakeChannel channel;
  auto outcome = Complete(
      R"({"model":"demo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})",
      channel);
  ASSERT_TRUE(outcome);
  const auto events = Events(channel.written);
  ASSERT_GE(events.size(), 2u);
  const auto usage_chunk = parser_.parse(events[events.size() - 2]).value();
  EXPECT_EQ(simdjson::dom::array(usage_chunk["choices"]).size(), 0u);
  EXPECT_GT(int64_t(usage_chunk["usage"]["completion_tokens"]), 0);
}

TEST_F(GatewayServiceTest, AClientThatLeavesCancelsTheUpstreamAndIsChargedForWhatWasGenerated) {
  FakeChannel channel;
  channel.leave_after = 3;
  auto outcome = Complete(R"({"model":"demo-slow","stream":true,"messages":[{"role":"user","content":"hi"}]})", channel);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(channel.written.find("[DONE]"), std::string::npos);
  ASSERT_EQ(admission_.settled.size(), 1u);
  EXPECT_EQ(admission_.settled[0].status, UsageStatus::kCancelled);
  EXPECT_TRUE(admission_.settled[0].usage.estimated);
  EXPECT_GT(admission_.settled[0].usage.completion_tokens, 0);
  EXPECT_LT(admission_.settled[0].usage.completion_tokens, 100);  // demo-slow's whole answer is 100 words
  EXPECT_EQ(sink_.events.at(0).status, UsageStatus::kCancelled);
}

TEST_F(GatewayServiceTest, AnUpstreamFailureMidStreamEndsWithAnErrorEvent) {
  // demo-stall sends 3 words, then nothing: the idle timeout ends the stream.
  Gateway impatient(GatewayConfig{.first_byte_timeout = milliseconds(1000), .idle_timeout = milliseconds(50)}, models_,
                    admission_, sink_, clock_, metrics_);
  FakeChannel channel;
  auto outcome = RunTask(impatient.ChatCompletions(
      caller_, R"({"model":"demo-stall","stream":true,"messages":[{"role":"user","content":"hi"}]})", channel));
  ASSERT_TRUE(outcome) << outcome.error().message;  // the stream had begun: the error is in it
  const auto events = Events(channel.written);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(channel.written.find("[DONE]"), std::string::npos);
  const auto last = parser_.parse(events.back()).value();
  EXPECT_EQ(std::string_view(last["error"]["code"]), "upstream_timeout");
  EXPECT_FALSE(std::string_view(last["error"]["message"]).empty());
  ASSERT_EQ(admission_.settled.size(), 1u);
  EXPECT_EQ(admission_.settled[0].status, UsageStatus::kError);
  std::string text;  // what was generated before the stall: what the estimate counts
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    std::string_view content;
    if (parser_.parse(events[i]).value()["choices"].at(0)["delta"]["content"].get(content) == simdjson::SUCCESS) {
      text += content;
    }
  }
  EXPECT_FALSE(text.empty());
  EXPECT_TRUE(admission_.settled[0].usage.estimated);
  EXPECT_EQ(admission_.settled[0].usage.completion_tokens, EstimateTokens(text.size()));
}

TEST_F(GatewayServiceTest, RefusesUnknownAndWrongKindsOfModelsBeforeAdmission) {
  FakeChannel channel;
  auto unknown = Complete(R"({"model":"gpt-9","messages":[{"role":"user","content":"hi"}]})", channel);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(unknown.error().param, "model");
  auto embedding = Complete(R"({"model":"demo-embedding","messages":[{"role":"user","content":"hi"}]})", channel);
  ASSERT_FALSE(embedding);
  EXPECT_EQ(embedding.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(admission_.admitted.empty());
  EXPECT_TRUE(sink_.events.empty());
}

TEST_F(GatewayServiceTest, AdmissionRefusalStopsTheRequest) {
  admission_.refuse = true;
  FakeChannel channel;
  auto refused = Complete(kHello, channel);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kRateLimited);
  EXPECT_TRUE(admission_.settled.empty());
  EXPECT_FALSE(channel.begun);
}

TEST_F(GatewayServiceTest, AnthropicMessagesGoThroughTheSameSeam) {
  FakeChannel channel;
  auto outcome = RunTask(gateway_.Messages(
      caller_, R"({"model":"demo","max_tokens":5,"messages":[{"role":"user","content":"hello there"}]})", channel));
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_FALSE(outcome->streamed);
  const auto root = parser_.parse(outcome->body).value();
  EXPECT_EQ(std::string_view(root["type"]), "message");
  EXPECT_TRUE(std::string_view(root["id"]).starts_with("msg_"));
  EXPECT_EQ(std::string_view(root["content"].at(0)["type"]), "text");
  EXPECT_EQ(std::string_view(root["stop_reason"]), "max_tokens");
  EXPECT_EQ(int64_t(root["usage"]["output_tokens"]), 5);
  ASSERT_EQ(admission_.admitted.size(), 1u);
  EXPECT_GT(admission_.admitted[0].second, 5);  // prompt estimate + max_tokens
  ASSERT_EQ(admission_.settled.size(), 1u);
  EXPECT_EQ(admission_.settled[0].usage.completion_tokens, 5);
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.events[0].status, UsageStatus::kOk);
  EXPECT_EQ(sink_.events[0].api_key_id, "k1");
}

TEST_F(GatewayServiceTest, AnthropicStreamIsItsEventSequenceAndSettlesOnce) {
  FakeChannel channel;
  auto outcome = RunTask(gateway_.Messages(
      caller_, R"({"model":"demo","max_tokens":4,"stream":true,"messages":[{"role":"user","content":"hi"}]})",
      channel));
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_TRUE(outcome->streamed && channel.begun);
  EXPECT_TRUE(channel.written.starts_with("event: message_start\n")) << channel.written;
  EXPECT_TRUE(channel.written.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
      << channel.written;
  EXPECT_EQ(channel.written.find("[DONE]"), std::string::npos);
  EXPECT_NE(channel.written.find(R"("stop_reason":"max_tokens")"), std::string::npos);
  EXPECT_NE(channel.written.find(R"("output_tokens":4})"), std::string::npos) << channel.written;
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.events[0].usage.completion_tokens, 4);
  EXPECT_EQ(sink_.events[0].status, UsageStatus::kOk);
}

TEST_F(GatewayServiceTest, AnthropicClientLeavingCancelsAndIsRecorded) {
  FakeChannel channel;
  channel.leave_after = 2;  // message_start, then one delta
  auto outcome = RunTask(gateway_.Messages(
      caller_, R"({"model":"demo","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]})",
      channel));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(channel.written.find("message_stop"), std::string::npos);
  ASSERT_EQ(sink_.events.size(), 1u);
  EXPECT_EQ(sink_.events[0].status, UsageStatus::kCancelled);
  EXPECT_LT(sink_.events[0].usage.completion_tokens, 50);
}

TEST_F(GatewayServiceTest, AnthropicValidationComesFirst) {
  FakeChannel channel;
  auto outcome = RunTask(gateway_.Messages(caller_, R"({"model":"demo","messages":[{"role":"user","content":"hi"}]})",
                                           channel));
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(outcome.error().param, "max_tokens");
  EXPECT_TRUE(admission_.admitted.empty());
  EXPECT_TRUE(sink_.events.empty());
}

TEST_F(GatewayServiceTest, AnUpstreamErrorBeforeTheFirstByteIsTheResponseAndIsSettled) {
  FakeChannel channel;
  auto failed = Complete(R"({"model":"demo-error","stream":true,"messages":[{"role":"user","content":"hi"}]})", channel);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_FALSE(channel.begun);
  ASSERT_EQ(admission_.settled.size(), 1u);
  EXPECT_EQ(admission_.settled[0].status, UsageStatus::kError);
  EXPECT_EQ(sink_.events.at(0).status, UsageStatus::kError);
}

TEST_F(GatewayServiceTest, JsonModeAnswersAJsonObject) {
  FakeChannel channel;
  auto outcome = Complete(
      R"({"model":"demo","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"say \"hi\""}]})",
      channel);
  ASSERT_TRUE(outcome);
  const auto root = parser_.parse(outcome->body).value();
  const std::string content(std::string_view(root["choices"].at(0)["message"]["content"]));
  simdjson::dom::parser inner;
  const auto answer = inner.parse(content).value();
  EXPECT_NE(std::string_view(answer["answer"]).find("say \"hi\""), std::string_view::npos);

  FakeChannel streamed;
  ASSERT_TRUE(Complete(
      R"({"model":"demo","stream":true,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"x"}]})",
      streamed));
  std::string joined;
  for (const auto& event : Events(streamed.written)) {
    if (event == "[DONE]") continue;
    std::string_view piece;
    if (parser_.parse(event).value()["choices"].at(0)["delta"]["content"].get(piece) == simdjson::SUCCESS) joined += piece;
  }
  EXPECT_TRUE(inner.parse(joined).value()["answer"].is_string()) << joined;
}

TEST_F(GatewayServiceTest, EmbeddingsAsFloatsAndBase64) {
  FakeChannel channel;
  auto floats = RunTask(gateway_.Embeddings(
      caller_, R"({"model":"demo-embedding","input":["hello world","bye"],"dimensions":16})", channel));
  ASSERT_TRUE(floats) << floats.error().message;
  const auto root = parser_.parse(*floats).value();
  EXPECT_EQ(std::string_view(root["object"]), "list");
  simdjson::dom::array data = root["data"];
  ASSERT_EQ(data.size(), 2u);
  std::vector<float> first;
  double norm = 0;
  for (double x : simdjson::dom::array(data.at(0)["embedding"])) {
    first.push_back(static_cast<float>(x));
    norm += x * x;
  }
  ASSERT_EQ(first.size(), 16u);
  EXPECT_NEAR(norm, 1.0, 1e-4);
  EXPECT_EQ(int64_t(root["usage"]["prompt_tokens"]), 3);

  FakeChannel again;
  auto encoded = RunTask(gateway_.Embeddings(
      caller_, R"({"model":"demo-embedding","input":"hello world","dimensions":16,"encoding_format":"base64"})", again));
  ASSERT_TRUE(encoded);
  const std::string base64(std::string_view(parser_.parse(*encoded).value()["data"].at(0)["embedding"]));
  // Decode and compare with the float answer: the same vector, bit for bit.
  std::string bytes;
  int bits = 0;
  std::uint32_t acc = 0;
  for (const char c : base64) {
    if (c == '=') break;
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    acc = (acc << 6) | static_cast<std::uint32_t>(std::strchr(alphabet, c) - alphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  ASSERT_EQ(bytes.size(), 16u * 4);
  for (std::size_t i = 0; i < 16; ++i) {
    float x = 0;
    std::memcpy(&x, bytes.data() + i * 4, 4);  // little-endian host
    EXPECT_FLOAT_EQ(x, first[i]);
  }
  EXPECT_EQ(sink_.events.size(), 2u);
}

TEST_F(GatewayServiceTest, EmbeddingsValidation) {
  FakeChannel channel;
  const auto param = [&](std::string_view body) {
    auto result = RunTask(gateway_.Embeddings(caller_, body, channel));
    EXPECT_FALSE(result) << body;
    return result ? std::string() : result.error().param;
  };
  EXPECT_EQ(param(R"({"input":"x"})"), "model");
  EXPECT_EQ(param(R"({"model":"demo-embedding"})"), "input");
  EXPECT_EQ(param(R"({"model":"demo-embedding","input":[]})"), "input");
  EXPECT_EQ(param(R"({"model":"demo-embedding","input":[[1,2,3]]})"), "input[0]");
  EXPECT_EQ(param(R"({"model":"demo-embedding","input":"x","encoding_format":"hex"})"), "encoding_format");
  EXPECT_EQ(param(R"({"model":"demo-embedding","input":"x","dimensions":0})"), "dimensions");
  EXPECT_EQ(param(R"({"model":"demo","input":"x"})"), "model");
  EXPECT_EQ(param(R"({"model":"nope","input":"x"})"), "model");
  EXPECT_EQ(param(R"({"model":"demo-embedding","input":"x","api_key":"sk-other"})"), "api_key");
}

TEST_F(GatewayServiceTest, ListsAndGetsModels) {
  const auto list = parser_.parse(gateway_.ListModels()).value();
  EXPECT_EQ(std::string_view(list["object"]), "list");
  EXPECT_EQ(simdjson::dom::array(list["data"]).size(), llm::DemoProvider::Models().size());
  auto model = gateway_.GetModel("demo-embedding");
  ASSERT_TRUE(model);
  const auto one = parser_.parse(*model).value();
  EXPECT_EQ(std::string_view(one["id"]), "demo-embedding");
  EXPECT_EQ(std::string_view(one["object"]), "model");
  auto missing = gateway_.GetModel("gpt-9");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().param, "model");
  EXPECT_FALSE(gateway_.GetModel(""));
}

// ---------------------------------------------------------------- the response cache

class GatewayCacheTest : public GatewayServiceTest {
 protected:
  ResponseCache cache_{ResponseCacheConfig{.enabled = true},
                       [](std::string) -> Task<Expected<bool>> { co_return true; }, clock_, registry_};
  Gateway cached_{GatewayConfig{}, models_, admission_, sink_, clock_, metrics_, &cache_};
};

constexpr std::string_view kDeterministic =
    R"({"model":"demo","temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"hello there"}]})";

TEST_F(GatewayCacheTest, AHitAnswersTheStoredBodyWithoutTheUpstreamAndChargesNothing) {
  FakeChannel first;
  auto missed = RunTask(cached_.ChatCompletions(caller_, kDeterministic, first));
  ASSERT_TRUE(missed) << missed.error().message;
  EXPECT_EQ(first.Header("x-chatd-cache"), "miss");
  FakeChannel second;
  auto hit = RunTask(cached_.ChatCompletions(caller_, kDeterministic, second));
  ASSERT_TRUE(hit) << hit.error().message;
  EXPECT_EQ(second.Header("x-chatd-cache"), "hit");
  EXPECT_EQ(hit->body, missed->body);  // the same id and all: the demo was not asked again

  // Admitted both times (RPM sees two requests), the hit as zero tokens, and settled.
  ASSERT_EQ(admission_.admitted.size(), 2u);
  EXPECT_GT(admission_.admitted[0].second, 5);
  EXPECT_EQ(admission_.admitted[1].second, 0);
  ASSERT_EQ(admission_.settled.size(), 2u);
  EXPECT_EQ(admission_.settled[1].status, UsageStatus::kCached);
  EXPECT_EQ(admission_.settled[1].usage.prompt_tokens + admission_.settled[1].usage.completion_tokens, 0);
  ASSERT_EQ(sink_.events.size(), 2u);
  const UsageEvent& event = sink_.events[1];
  EXPECT_EQ(event.status, UsageStatus::kCached);
  EXPECT_EQ(event.model, "demo");
  EXPECT_EQ(event.api_key_id, "k1");
  EXPECT_EQ(event.usage.prompt_tokens + event.usage.completion_tokens, 0);
  EXPECT_EQ(event.cost, 0);
  // One model call, counted once; the hit is the cache's.
  const std::string exposition = registry_.Render();
  EXPECT_NE(exposition.find(R"(llm_requests_total{provider="demo",model="demo",status="ok"} 1)"), std::string::npos)
      << exposition;
  EXPECT_EQ(exposition.find(R"(status="cached")"), std::string::npos) << exposition;
  EXPECT_NE(exposition.find("gateway_cache_hits_total 1"), std::string::npos) << exposition;
}

TEST_F(GatewayCacheTest, StreamsAndOtherTemperaturesBypass) {
  FakeChannel stream;
  auto streamed = RunTask(cached_.ChatCompletions(
      caller_, R"({"model":"demo","temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]})",
      stream));
  ASSERT_TRUE(streamed);
  EXPECT_TRUE(stream.begun);
  EXPECT_EQ(stream.Header("x-chatd-cache"), "bypass");
  for (int i = 0; i < 2; ++i) {
    FakeChannel warm;
    ASSERT_TRUE(RunTask(cached_.ChatCompletions(
        caller_, R"({"model":"demo","temperature":0.5,"messages":[{"role":"user","content":"hi"}]})", warm)));
    EXPECT_EQ(warm.Header("x-chatd-cache"), "bypass");
  }
  EXPECT_EQ(cache_.Bytes(), 0u);
  // Without a cache the header still says what happened.
  FakeChannel plain;
  ASSERT_TRUE(Complete(kDeterministic, plain));
  EXPECT_EQ(plain.Header("x-chatd-cache"), "bypass");
}

TEST_F(GatewayCacheTest, AnAnthropicRequestIsNeverCached) {
  const std::string_view body =
      R"({"model":"demo","max_tokens":5,"temperature":0,"messages":[{"role":"user","content":"hi"}]})";
  for (int i = 0; i < 2; ++i) {
    FakeChannel channel;
    ASSERT_TRUE(RunTask(cached_.Messages(caller_, body, channel)));
    EXPECT_TRUE(channel.headers.empty());
  }
  EXPECT_EQ(cache_.Bytes(), 0u);
}

TEST_F(GatewayCacheTest, ARefusedHitIsNotAnswered) {
  FakeChannel first;
  ASSERT_TRUE(RunTask(cached_.ChatCompletions(caller_, kDeterministic, first)));
  admission_.refuse = true;
  FakeChannel second;
  auto refused = RunTask(cached_.ChatCompletions(caller_, kDeterministic, second));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kRateLimited);
  EXPECT_TRUE(second.headers.empty());
  EXPECT_EQ(sink_.events.size(), 1u);  // a refusal before admission records nothing, as for any request
}

}  // namespace
}  // namespace chatd::gateway
