#include "llm/openai_provider.hpp"

#include <charconv>
#include <utility>

#include <fmt/format.h>

#include "core/json.hpp"
#include "llm/sse_parser.hpp"

namespace chatd::llm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMaxErrorBody = 64 * 1024;
// A non-streamed completion's head and body usually fit: one read instead of two.
constexpr std::size_t kWholeAnswerRead = 4 * 1024;
constexpr std::size_t kMaxModelsBody = 4 * 1024 * 1024;
constexpr milliseconds kListTimeout{15'000};  // GET /models, at startup: keep the start bounded
constexpr std::size_t kMaxEmbeddingsBody = 128 * 1024 * 1024;
constexpr std::size_t kMaxQuotedMessage = 300;
constexpr milliseconds kDrainWait{50};  // for the body's end after [DONE]

// One parser per thread: each use parses and reads the document without suspending.
simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

std::string Truncate(std::string_view text) {
  if (text.size() <= kMaxQuotedMessage) return std::string(text);
  std::size_t end = kMaxQuotedMessage;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;  // whole UTF-8 sequences
  return std::string(text.substr(0, end)) + "…";
}

// The message of an error body: {"error":{"message":..}}, {"error":".."} (Ollama) or
// {"message":..}; empty when there is none.
std::string ErrorMessage(std::string_view body) {
  auto parsed = ParseJson(Parser(), body);
  if (!parsed) return {};
  std::string_view message;
  if ((*parsed)["error"]["message"].get(message) == simdjson::SUCCESS) return Truncate(message);
  if ((*parsed)["error"].get(message) == simdjson::SUCCESS) return Truncate(message);
  if ((*parsed)["message"].get(message) == simdjson::SUCCESS) return Truncate(message);
  return {};
}

std::optional<std::int64_t> ParseCount(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

Unexpected Cancelled() { return MakeError(ErrorCode::kUnavailable, "cancelled"); }

// The chunks of one streamed completion, read from the SSE body as the consumer pulls.
class OpenAiStream final : public ChatStream {
 public:
  OpenAiStream(std::unique_ptr<http::ClientCall> call, std::string provider, milliseconds first_byte_timeout,
               milliseconds idle_timeout)
      : call_(std::move(call)),
        provider_(std::move(provider)),
        first_byte_timeout_(first_byte_timeout),
        idle_timeout_(idle_timeout),
        last_progress_(Clock::now()) {}

  Task<Expected<std::optional<ChatChunk>>> Next() override {
    if (cancelled_) co_return Cancelled();
    if (failure_) co_return Unexpected{*failure_};
    if (done_) co_return std::optional<ChatChunk>{};
    while (true) {
      while (!saw_done_) {
        auto event = parser_.Next();
        if (!event) break;
        auto chunk = Handle(*event);
        if (!chunk) co_return Fail(std::move(chunk).error());
        if (*chunk) co_return std::move(*chunk);
      }
      if (saw_done_) {
        // The body's last chunk usually follows [DONE] at once: read it, so the connection
        // goes back to the pool, but do not wait for a server that keeps the stream open.
        if (!ended_) {
          auto rest = co_await call_->ReadSome(Clock::now() + kDrainWait);
          if (cancelled_) co_return Cancelled();
          ended_ = rest && !*rest;
        }
        co_return Finish();
      }
      if (ended_) {
        // A body that ends without [DONE] is complete only if the answer said how it ended.
        if (finish_reason_.empty()) {
          co_return Fail(Error{ErrorCode::kUpstreamUnavailable,
                               fmt::format("{} ended the stream before the answer was complete", provider_)});
        }
        co_return Finish();
      }
      // The next event must come within the first-byte timeout of the start, then within
      // the idle timeout of the previous one; keep-alive comments do not count.
      const milliseconds timeout = started_ ? idle_timeout_ : first_byte_timeout_;
      auto piece = co_await call_->ReadSome(last_progress_ + timeout);
      if (cancelled_) co_return Cancelled();
      if (!piece && piece.error().code == ErrorCode::kUpstreamTimeout) {
        const std::string_view what = started_ ? "no token" : "no first token";
        co_return Fail(Error{ErrorCode::kUpstreamTimeout,
                             fmt::format("{} from {} within {} ms", what, provider_, timeout.count())});
      }
      if (!piece) co_return Fail(std::move(piece).error());
      if (!*piece) {
        ended_ = true;
        continue;
      }
      if (auto fed = parser_.Feed(**piece); !fed) co_return Fail(std::move(fed).error());
    }
  }

  void Cancel() override {
    cancelled_ = true;
    if (call_) call_->Cancel();  // after the end there is nothing left to close
  }

 private:
  // One event: a chunk to hand out, nothing (keep reading), or the upstream's error.
  Expected<std::optional<ChatChunk>> Handle(const SseEvent& event) {
    last_progress_ = Clock::now();
    started_ = true;
    if (event.data == "[DONE]") {
      saw_done_ = true;
      return std::optional<ChatChunk>{};
    }
    auto parsed = ParseJson(Parser(), event.data);
    if (!parsed) {
      return MakeError(ErrorCode::kUpstreamUnavailable, fmt::format("{} sent a malformed stream event", provider_));
    }
    const simdjson::dom::element& root = *parsed;
    simdjson::dom::element error;
    if (root["error"].get(error) == simdjson::SUCCESS) {
      std::string message = ErrorMessage(event.data);
      return MakeError(ErrorCode::kUpstreamUnavailable,
                       fmt::format("{} failed mid-answer: {}", provider_, message.empty() ? "unknown error" : message));
    }
    simdjson::dom::object usage;
    if (root["usage"].get(usage) == simdjson::SUCCESS) {
      Usage counted;
      if (usage["prompt_tokens"].get(counted.prompt_tokens) != simdjson::SUCCESS) counted.prompt_tokens = 0;
      if (usage["completion_tokens"].get(counted.completion_tokens) != simdjson::SUCCESS) counted.completion_tokens = 0;
      usage_ = counted;
    }
    simdjson::dom::array choices;
    if (root["choices"].get(choices) != simdjson::SUCCESS) return std::optional<ChatChunk>{};
    std::string_view content;
    std::string_view finish_reason;
    for (simdjson::dom::element choice : choices) {  // we ask for one (n = 1)
      if (choice["delta"]["content"].get(content) != simdjson::SUCCESS) content = {};
      if (choice["finish_reason"].get(finish_reason) != simdjson::SUCCESS) finish_reason = {};
      break;
    }
    if (!finish_reason.empty()) finish_reason_ = std::string(finish_reason);
    if (!finish_reason_.empty()) {
      // The end is near: keep the text for the last chunk, which waits for the usage.
      held_.append(content);
      return std::optional<ChatChunk>{};
    }
    if (content.empty()) return std::optional<ChatChunk>{};  // e.g. the first, role-only chunk
    return std::optional<ChatChunk>(ChatChunk{.delta = std::string(content), .finish_reason = {}, .usage = {}});
  }

  ChatChunk Finish() {
    done_ = true;
    call_.reset();  // pooled if the body was read to its end (ClientCall), closed otherwise
    return ChatChunk{.delta = std::move(held_),
                     .finish_reason = finish_reason_.empty() ? "stop" : finish_reason_,
                     .usage = usage_};
  }

  Unexpected Fail(Error error) {
    if (cancelled_) return Cancelled();
    failure_ = error;
    if (call_) call_->Cancel();  // a broken stream's connection cannot be reused
    return Unexpected{std::move(error)};
  }

  std::unique_ptr<http::ClientCall> call_;
  std::string provider_;
  milliseconds first_byte_timeout_;
  milliseconds idle_timeout_;
  Clock::time_point last_progress_;
  SseParser parser_;
  bool started_ = false;
  bool saw_done_ = false;
  bool ended_ = false;
  bool done_ = false;
  bool cancelled_ = false;
  std::optional<Error> failure_;
  std::string finish_reason_;
  std::string held_;
  std::optional<Usage> usage_;
};

// The `param` of an OpenAI error body ({"error":{"param":"tools[0].function.name"}}).
std::string ErrorParam(std::string_view body) {
  auto parsed = ParseJson(Parser(), body);
  std::string_view param;
  if (!parsed || (*parsed)["error"]["param"].get(param) != simdjson::SUCCESS) return {};
  return Truncate(param);
}

// The body of a pass-through completion, read as the upstream sends it.
class OpenAiCompletion final : public CompletionResponse {
 public:
  OpenAiCompletion(std::unique_ptr<http::ClientCall> call, std::string content_type, milliseconds first_byte_timeout,
                   milliseconds idle_timeout)
      : call_(std::move(call)),
        content_type_(std::move(content_type)),
        first_byte_timeout_(first_byte_timeout),
        idle_timeout_(idle_timeout) {}

  std::string_view content_type() const override { return content_type_; }
  milliseconds first_byte_timeout() const override { return first_byte_timeout_; }
  milliseconds idle_timeout() const override { return idle_timeout_; }

  Task<Expected<std::optional<std::string>>> Read(TimePoint not_after) override {
    if (!call_) co_return std::optional<std::string>{};
    auto piece = co_await call_->ReadSome(not_after);  // and under the request's idle timeout
    if (!piece) co_return Unexpected{std::move(piece).error()};
    if (!*piece) {
      call_.reset();  // read to the end: the connection is pooled
      co_return std::optional<std::string>{};
    }
    co_return std::optional<std::string>(std::in_place, **piece);
  }

  void Cancel() override {
    if (call_) call_->Cancel();
  }

 private:
  std::unique_ptr<http::ClientCall> call_;
  std::string content_type_;
  milliseconds first_byte_timeout_;
  milliseconds idle_timeout_;
};

}  // namespace

Error UpstreamError(std::string_view provider, int status, std::string_view body, std::string_view retry_after,
                    std::string_view retry_after_ms) {
  const std::string message = ErrorMessage(body);
  const std::string detail = message.empty() ? fmt::format("HTTP {}", status) : fmt::format("HTTP {}: {}", status, message);
  Error error;
  switch (status) {
    case 400:
    case 413:
    case 422:
      error = {ErrorCode::kInvalidArgument, fmt::format("{} rejected the request ({})", provider, detail),
               ErrorParam(body)};
      break;
    case 404:
      error = {ErrorCode::kNotFound, fmt::format("{} does not know this model or path ({})", provider, detail)};
      break;
    case 401:
    case 403:
      error = {ErrorCode::kInternal,
               fmt::format("{} refused chatd's credentials (HTTP {}); check its API key", provider, status)};
      break;
    case 408:
      error = {ErrorCode::kUpstreamTimeout, fmt::format("{} timed out ({})", provider, detail)};
      break;
    case 429:
      error = {ErrorCode::kRateLimited, fmt::format("{} is rate limiting chatd ({})", provider, detail)};
      break;
    default:
      error = {ErrorCode::kUpstreamUnavailable, fmt::format("{} failed ({})", provider, detail)};
  }
  if (const auto ms = ParseCount(retry_after_ms)) {
    error.retry_after = milliseconds(*ms);
  } else if (const auto seconds = ParseCount(retry_after)) {
    error.retry_after = std::chrono::seconds(*seconds);  // the HTTP-date form is not used by LLM APIs
  }
  return error;
}

OpenAiProvider::OpenAiProvider(OpenAiConfig config, http::Client& client) : config_(std::move(config)), client_(client) {
  while (!config_.base_url.empty() && config_.base_url.back() == '/') config_.base_url.pop_back();
}

http::ClientRequest OpenAiProvider::Request(http::Method method, std::string_view path) const {
  http::ClientRequest request;
  request.method = method;
  request.url = config_.base_url + std::string(path);
  if (!config_.api_key.empty()) request.headers.emplace_back("Authorization", "Bearer " + config_.api_key);
  if (method == http::Method::kPost) request.headers.emplace_back("Content-Type", "application/json");
  request.connect_timeout = config_.connect_timeout;
  request.first_byte_timeout = config_.first_byte_timeout;
  request.idle_timeout = config_.idle_timeout;
  return request;
}

milliseconds OpenAiProvider::FirstByteTimeout(const CallLimits& model, milliseconds fallback) const {
  return model.first_byte_timeout.value_or(config_.first_byte_timeout.value_or(fallback));
}

milliseconds OpenAiProvider::IdleTimeout(const CallLimits& model, milliseconds fallback) const {
  return model.idle_timeout.value_or(config_.idle_timeout.value_or(fallback));
}

Task<Expected<std::string>> OpenAiProvider::Exchange(const http::ClientRequest& request, std::size_t max_bytes) {
  auto call = co_await client_.Send(request);
  if (!call) co_return Unexpected{std::move(call).error()};
  const int status = (*call)->status();
  auto body = co_await (*call)->ReadAll(status / 100 == 2 ? max_bytes : kMaxErrorBody);
  if (status / 100 != 2) {
    co_return Unexpected{UpstreamError(config_.name, status, body ? *body : std::string(), (*call)->Header("Retry-After"),
                                       (*call)->Header("retry-after-ms"))};
  }
  co_return body;
}

Task<Expected<std::unique_ptr<ChatStream>>> OpenAiProvider::StreamChat(const ChatRequest& request) {
  if (request.messages.empty()) co_return MakeError(ErrorCode::kInvalidArgument, "messages must not be empty", "messages");
  JsonWriter json;
  json.BeginObject().Field("model", request.model).Key("messages").BeginArray();
  for (const ChatMessage& message : request.messages) {
    json.BeginObject().Field("role", message.role).Field("content", message.content).EndObject();
  }
  json.EndArray();
  json.Field("stream", true).Key("stream_options").BeginObject().Field("include_usage", true).EndObject();
  if (request.temperature) json.Field("temperature", *request.temperature);
  if (request.top_p) json.Field("top_p", *request.top_p);
  if (request.max_tokens) json.Field("max_tokens", *request.max_tokens);
  json.EndObject();

  http::ClientRequest post = Request(http::Method::kPost, "/chat/completions");
  post.headers.emplace_back("Accept", "text/event-stream");
  post.body = std::move(json).str();
  const milliseconds first_byte = FirstByteTimeout(request.limits, request.first_byte_timeout);
  const milliseconds idle = IdleTimeout(request.limits, request.idle_timeout);
  post.first_byte_timeout = first_byte;
  post.idle_timeout = idle;

  auto call = co_await client_.Send(post);
  if (!call) co_return Unexpected{std::move(call).error()};
  const int status = (*call)->status();
  if (status != 200) {
    auto body = co_await (*call)->ReadAll(kMaxErrorBody);
    co_return Unexpected{UpstreamError(config_.name, status, body ? *body : std::string(), (*call)->Header("Retry-After"),
                                       (*call)->Header("retry-after-ms"))};
  }
  if ((*call)->Header("Content-Type").find("text/event-stream") == std::string_view::npos) {
    co_return MakeError(ErrorCode::kUpstreamUnavailable,
                        fmt::format("{} answered a streamed completion with '{}', not an event stream", config_.name,
                                    (*call)->Header("Content-Type")));
  }
  co_return std::unique_ptr<ChatStream>(std::make_unique<OpenAiStream>(std::move(*call), config_.name, first_byte, idle));
}

Task<Expected<std::unique_ptr<CompletionResponse>>> OpenAiProvider::Complete(const CompletionRequest& request) {
  http::ClientRequest post = Request(http::Method::kPost, "/chat/completions");
  if (request.stream) {
    post.headers.emplace_back("Accept", "text/event-stream");
  } else {
    post.read_size = kWholeAnswerRead;
  }
  std::string body;
  const std::string_view fields = request.fields ? std::string_view(*request.fields) : std::string_view();
  body.reserve(fields.size() + request.model.size() + 16);
  body += R"({"model":")";
  AppendJsonEscaped(body, request.model);
  body += '"';
  if (!fields.empty()) (body += ',') += fields;
  body += '}';
  post.body = std::move(body);
  const milliseconds first_byte = FirstByteTimeout(request.limits, request.first_byte_timeout);
  const milliseconds idle = IdleTimeout(request.limits, request.idle_timeout);
  post.first_byte_timeout = first_byte;
  post.idle_timeout = idle;
  post.cancel = request.cancel;

  auto call = co_await client_.Send(post);
  if (!call) co_return Unexpected{std::move(call).error()};
  const int status = (*call)->status();
  if (status / 100 != 2) {
    auto error_body = co_await (*call)->ReadAll(kMaxErrorBody);
    co_return Unexpected{UpstreamError(config_.name, status, error_body ? *error_body : std::string(),
                                       (*call)->Header("Retry-After"), (*call)->Header("retry-after-ms"))};
  }
  const std::string_view content_type = (*call)->Header("Content-Type");
  const bool event_stream = content_type.find("text/event-stream") != std::string_view::npos;
  if (request.stream != event_stream) {
    co_return MakeError(ErrorCode::kUpstreamUnavailable,
                        fmt::format("{} answered a {} completion with '{}'", config_.name,
                                    request.stream ? "streamed" : "non-streamed", content_type));
  }
  std::string type(event_stream ? "text/event-stream" : "application/json");
  co_return std::unique_ptr<CompletionResponse>(
      std::make_unique<OpenAiCompletion>(std::move(*call), std::move(type), first_byte, idle));
}

Task<Expected<Embeddings>> OpenAiProvider::Embed(const EmbeddingRequest& request) {
  if (request.input.empty()) co_return MakeError(ErrorCode::kInvalidArgument, "input must not be empty", "input");
  JsonWriter json;
  json.BeginObject().Field("model", request.model).Key("input").BeginArray();
  for (const std::string& text : request.input) json.String(text);
  json.EndArray();
  if (request.dimensions) json.Field("dimensions", *request.dimensions);
  json.Field("encoding_format", "float").EndObject();
  http::ClientRequest post = Request(http::Method::kPost, "/embeddings");
  post.body = std::move(json).str();
  if (request.limits.first_byte_timeout) post.first_byte_timeout = request.limits.first_byte_timeout;

  auto body = co_await Exchange(post, kMaxEmbeddingsBody);
  if (!body) co_return Unexpected{std::move(body).error()};
  auto parsed = ParseJson(Parser(), *body);
  const auto malformed = [&] {
    return MakeError(ErrorCode::kUpstreamUnavailable, fmt::format("{} sent a malformed embeddings answer", config_.name));
  };
  simdjson::dom::array data;
  if (!parsed || (*parsed)["data"].get(data) != simdjson::SUCCESS) co_return malformed();
  Embeddings result;
  result.vectors.resize(request.input.size());
  for (simdjson::dom::element item : data) {
    std::uint64_t index = 0;
    simdjson::dom::array values;
    if (item["index"].get(index) != simdjson::SUCCESS || index >= result.vectors.size() ||
        item["embedding"].get(values) != simdjson::SUCCESS) {
      co_return malformed();
    }
    auto& vector = result.vectors[index];
    for (simdjson::dom::element value : values) {
      double x = 0;
      if (value.get(x) != simdjson::SUCCESS) co_return malformed();
      vector.push_back(static_cast<float>(x));
    }
  }
  for (const auto& vector : result.vectors) {
    if (vector.empty()) co_return malformed();  // an input without its vector
  }
  if ((*parsed)["usage"]["prompt_tokens"].get(result.usage.prompt_tokens) != simdjson::SUCCESS) result.usage.prompt_tokens = 0;
  std::string_view model = request.model;
  if ((*parsed)["model"].get(model) != simdjson::SUCCESS) model = request.model;
  result.model = std::string(model);
  co_return result;
}

Task<Expected<std::vector<std::string>>> OpenAiProvider::ListModels() {
  http::ClientRequest get = Request(http::Method::kGet, "/models");
  get.total_timeout = kListTimeout;
  auto body = co_await Exchange(get, kMaxModelsBody);
  if (!body) co_return Unexpected{std::move(body).error()};
  auto parsed = ParseJson(Parser(), *body);
  simdjson::dom::array data;
  if (!parsed || (*parsed)["data"].get(data) != simdjson::SUCCESS) {
    co_return MakeError(ErrorCode::kUpstreamUnavailable, fmt::format("{} sent a malformed model list", config_.name));
  }
  std::vector<std::string> ids;
  for (simdjson::dom::element model : data) {
    std::string_view id;
    if (model["id"].get(id) == simdjson::SUCCESS && !id.empty()) ids.emplace_back(id);
  }
  co_return ids;
}

}  // namespace chatd::llm
