// Provider::Complete for providers that only speak ChatStream (the demo models, test
// doubles): the client's OpenAI request is read for what a text stream can honour, and
// the stream's chunks are written back in OpenAI's wire format — a `chat.completion` JSON
// body, or `chat.completion.chunk` events ending with `data: [DONE]` — so the gateway
// handles every provider the same way, as bytes in OpenAI's framing.
//
// Honoured: the messages' text (string content, or the text parts of a content array;
// image parts are left out), `max_completion_tokens` / `max_tokens`, `temperature`,
// `top_p`, `stream`, `stream_options.include_usage`, and JSON mode: with `response_format`
// json_object or json_schema the answer is a JSON object {"answer": "<text>"}, so a client
// that parses it works. Not available: tools (the model answers text), `n` > 1, logprobs.
#include <chrono>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "core/ids.hpp"
#include "core/json.hpp"
#include "llm/provider.hpp"

namespace chatd::llm {
namespace {

constexpr std::string_view kJsonPrefix = R"({"answer":")";
constexpr std::string_view kJsonSuffix = R"("})";

simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

Unexpected Cancelled() { return MakeError(ErrorCode::kUnavailable, "cancelled"); }

struct Plan {
  ChatRequest chat;
  bool stream = false;
  bool include_usage = false;
  bool json_mode = false;
};

// The text of a message's content: a string, or the text parts of an array.
std::string ContentText(simdjson::dom::element content) {
  std::string_view text;
  if (content.get(text) == simdjson::SUCCESS) return std::string(text);
  std::string joined;
  simdjson::dom::array parts;
  if (content.get(parts) != simdjson::SUCCESS) return joined;
  for (simdjson::dom::element part : parts) {
    std::string_view type;
    if (part["type"].get(type) != simdjson::SUCCESS || type != "text") continue;
    if (part["text"].get(text) != simdjson::SUCCESS) continue;
    if (!joined.empty()) joined += '\n';
    joined += text;
  }
  return joined;
}

Expected<Plan> ReadPlan(const CompletionRequest& request) {
  const std::string body = "{" + (request.fields ? *request.fields : std::string()) + "}";
  auto parsed = ParseJson(Parser(), body);
  if (!parsed) return Unexpected{std::move(parsed).error()};
  const simdjson::dom::element root = *parsed;
  Plan plan;
  plan.chat.model = request.model;
  plan.chat.first_byte_timeout = request.first_byte_timeout;
  plan.chat.idle_timeout = request.idle_timeout;
  plan.chat.limits = request.limits;
  simdjson::dom::array messages;
  if (root["messages"].get(messages) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::kInvalidArgument, "messages must be an array", "messages");
  }
  for (simdjson::dom::element message : messages) {
    std::string_view role;
    if (message["role"].get(role) != simdjson::SUCCESS) role = "user";
    simdjson::dom::element content;
    std::string text;
    if (message["content"].get(content) == simdjson::SUCCESS) text = ContentText(content);
    plan.chat.messages.push_back(ChatMessage{std::string(role), std::move(text)});
  }
  std::int64_t max_tokens = 0;
  if (root["max_completion_tokens"].get(max_tokens) == simdjson::SUCCESS ||
      root["max_tokens"].get(max_tokens) == simdjson::SUCCESS) {
    plan.chat.max_tokens = max_tokens;
  }
  double number = 0;
  if (root["temperature"].get(number) == simdjson::SUCCESS) plan.chat.temperature = number;
  if (root["top_p"].get(number) == simdjson::SUCCESS) plan.chat.top_p = number;
  std::int64_t n = 1;
  if (root["n"].get(n) == simdjson::SUCCESS && n != 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("model '{}' can only produce one choice (n = 1)", request.model), "n");
  }
  if (root["stream"].get(plan.stream) != simdjson::SUCCESS) plan.stream = false;
  if (root["stream_options"]["include_usage"].get(plan.include_usage) != simdjson::SUCCESS) plan.include_usage = false;
  std::string_view format;
  if (root["response_format"]["type"].get(format) == simdjson::SUCCESS) {
    plan.json_mode = format == "json_object" || format == "json_schema";
  }
  return plan;
}

std::string Escaped(std::string_view text) {
  std::string out;
  AppendJsonEscaped(out, text);
  return out;
}

void WriteUsage(JsonWriter& json, const Usage& usage) {
  json.Key("usage").BeginObject();
  json.Field("prompt_tokens", usage.prompt_tokens).Field("completion_tokens", usage.completion_tokens);
  json.Field("total_tokens", usage.prompt_tokens + usage.completion_tokens).EndObject();
}

class SynthesizedCompletion final : public CompletionResponse {
 public:
  SynthesizedCompletion(std::unique_ptr<ChatStream> stream, Plan plan, CancelSignal* cancel)
      : stream_(std::move(stream)),
        plan_(std::move(plan)),
        cancel_(cancel),
        id_("chatcmpl-" + NewUuidV7()),
        created_(std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count()) {
    if (cancel_ != nullptr) cancel_token_ = cancel_->OnCancel([this] { Cancel(); });
  }
  ~SynthesizedCompletion() override {
    if (cancel_ != nullptr) cancel_->Clear(cancel_token_);
  }

  std::string_view content_type() const override { return plan_.stream ? "text/event-stream" : "application/json"; }
  std::chrono::milliseconds first_byte_timeout() const override {
    return plan_.chat.limits.first_byte_timeout.value_or(plan_.chat.first_byte_timeout);
  }
  std::chrono::milliseconds idle_timeout() const override {
    return plan_.chat.limits.idle_timeout.value_or(plan_.chat.idle_timeout);
  }

  // `not_after` is not needed: the stream's own timeouts bound each chunk.
  Task<Expected<std::optional<std::string>>> Read(TimePoint) override {
    if (cancelled_) co_return Cancelled();
    if (done_) co_return std::optional<std::string>{};
    if (!plan_.stream) co_return co_await ReadWhole();
    std::string out;
    if (!started_) {
      started_ = true;
      out = Event(R"({"role":"assistant","content":")" + std::string(plan_.json_mode ? Escaped(kJsonPrefix) : "") +
                      R"("})",
                  "");
      co_return out;
    }
    auto chunk = co_await stream_->Next();
    if (cancelled_) co_return Cancelled();
    if (!chunk) co_return Unexpected{std::move(chunk).error()};
    if (!*chunk) {  // ended without a finish_reason: end it as "stop"
      done_ = true;
      co_return Finish(ChatChunk{.delta = {}, .finish_reason = "stop", .usage = {}});
    }
    if ((*chunk)->finish_reason.empty()) {
      if (!(*chunk)->delta.empty()) out = Event(R"({"content":")" + Content((*chunk)->delta) + R"("})", "");
      co_return out;  // may be empty: the gateway reads on
    }
    done_ = true;
    co_return Finish(std::move(**chunk));
  }

  void Cancel() override {
    cancelled_ = true;
    stream_->Cancel();
  }

 private:
  std::string Content(std::string_view delta) const { return plan_.json_mode ? Escaped(Escaped(delta)) : Escaped(delta); }

  // One SSE event: a chunk with one choice (or none, for the usage chunk).
  std::string Event(std::string_view delta_json, std::string_view finish_reason,
                    const std::optional<Usage>& usage = std::nullopt, bool no_choices = false) const {
    JsonWriter json;
    json.BeginObject().Field("id", id_).Field("object", "chat.completion.chunk").Field("created", created_);
    json.Field("model", plan_.chat.model).Key("choices").BeginArray();
    if (!no_choices) {
      json.BeginObject().Field("index", 0).Key("delta").Raw(delta_json).Key("logprobs").Null();
      json.Key("finish_reason");
      if (finish_reason.empty()) json.Null(); else json.String(finish_reason);
      json.EndObject();
    }
    json.EndArray();
    if (usage) WriteUsage(json, *usage);
    json.EndObject();
    return fmt::format("data: {}\n\n", json.str());
  }

  std::string Finish(ChatChunk last) {
    std::string text = Content(last.delta);
    if (plan_.json_mode) text += Escaped(kJsonSuffix);
    std::string out;
    if (!text.empty()) out += Event(R"({"content":")" + text + R"("})", "");
    out += Event("{}", last.finish_reason);
    if (plan_.include_usage && last.usage) out += Event("", "", last.usage, true);
    out += "data: [DONE]\n\n";
    return out;
  }

  Task<Expected<std::optional<std::string>>> ReadWhole() {
    std::string text;
    ChatChunk last;
    while (true) {
      auto chunk = co_await stream_->Next();
      if (cancelled_) co_return Cancelled();
      if (!chunk) co_return Unexpected{std::move(chunk).error()};
      if (!*chunk) break;
      text += (*chunk)->delta;
      if (!(*chunk)->finish_reason.empty()) {
        last = std::move(**chunk);
        break;
      }
    }
    done_ = true;
    if (plan_.json_mode) text = std::string(kJsonPrefix) + Escaped(text) + std::string(kJsonSuffix);
    JsonWriter json;
    json.BeginObject().Field("id", id_).Field("object", "chat.completion").Field("created", created_);
    json.Field("model", plan_.chat.model).Key("choices").BeginArray().BeginObject().Field("index", 0);
    json.Key("message").BeginObject().Field("role", "assistant").Field("content", text).Key("refusal").Null().EndObject();
    json.Key("logprobs").Null().Field("finish_reason", last.finish_reason.empty() ? "stop" : last.finish_reason);
    json.EndObject().EndArray();
    if (last.usage) WriteUsage(json, *last.usage);
    json.EndObject();
    co_return std::optional<std::string>(std::move(json).str());
  }

  std::unique_ptr<ChatStream> stream_;
  Plan plan_;
  CancelSignal* cancel_;
  CancelSignal::Token cancel_token_ = 0;
  std::string id_;
  std::int64_t created_;
  bool started_ = false;
  bool done_ = false;
  bool cancelled_ = false;
};

}  // namespace

Task<Expected<std::unique_ptr<CompletionResponse>>> Provider::Complete(const CompletionRequest& request) {
  auto plan = ReadPlan(request);
  if (!plan) co_return Unexpected{std::move(plan).error()};
  if (request.cancel != nullptr && request.cancel->cancelled()) co_return Cancelled();
  auto stream = co_await StreamChat(plan->chat);
  if (!stream) co_return Unexpected{std::move(stream).error()};
  co_return std::unique_ptr<CompletionResponse>(
      std::make_unique<SynthesizedCompletion>(std::move(*stream), std::move(*plan), request.cancel));
}

}  // namespace chatd::llm
