#include "gateway/gateway.hpp"

#include <cmath>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "core/cancel.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "gateway/anthropic.hpp"
#include "gateway/completion_meter.hpp"
#include "gateway/completion_request.hpp"
#include "llm/sse_parser.hpp"

namespace chatd::gateway {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kDrainWait{50};  // for the upstream body's end after [DONE]
constexpr std::int64_t kModelsCreated = 1700000000;  // /v1/models "created": chatd has no real date
constexpr std::size_t kMaxEmbeddingInputs = 2048;

simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

std::int64_t MillisecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count();
}

// Watches the client for as long as it lives: the callback may reference the caller's
// locals, so it must not run once they are gone, whenever the channel stops watching.
class Watch {
 public:
  Watch(ClientChannel& channel, std::function<void()> on_gone) : alive_(std::make_shared<bool>(true)) {
    channel.WatchClient([alive = alive_, on_gone = std::move(on_gone)] {
      if (*alive) on_gone();
    });
  }
  ~Watch() { *alive_ = false; }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

 private:
  std::shared_ptr<bool> alive_;
};

bool IsCancel(const Error& error) { return error.code == ErrorCode::kUnavailable && error.message == "cancelled"; }

// The event that ends a stream the upstream broke: the shape the OpenAI SDKs raise from.
std::string ErrorEvent(const Error& error) {
  JsonWriter json;
  json.BeginObject().Key("error").BeginObject();
  json.Field("message", error.message).Field("type", ErrorType(error.code)).Field("code", ErrorCodeName(error.code));
  json.Key("param").Null().EndObject().EndObject();
  return fmt::format("data: {}\n\n", json.str());
}

void WriteModel(JsonWriter& json, const llm::ModelInfo& model) {
  json.BeginObject().Field("id", model.id).Field("object", "model").Field("created", kModelsCreated);
  json.Field("owned_by", model.owned_by.empty() ? model.provider : model.owned_by).EndObject();
}

double Cost(const llm::ModelInfo& model, const TokenUsage& usage) {
  return (static_cast<double>(usage.prompt_tokens) * model.input_price_per_million +
          static_cast<double>(usage.completion_tokens) * model.output_price_per_million) /
         1e6;
}

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Standard base64 with padding (what OpenAI's encoding_format "base64" is).
void AppendBase64(std::string& out, const unsigned char* data, std::size_t size) {
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  if (i < size) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (i + 1 < size) v |= std::uint32_t{data[i + 1]} << 8;
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += i + 1 < size ? kBase64[(v >> 6) & 63] : '=';
    out += '=';
  }
}

struct EmbeddingsInput {
  llm::EmbeddingRequest request;
  std::string model;
  bool base64 = false;
  std::size_t bytes = 0;
};

Expected<EmbeddingsInput> ReadEmbeddingsBody(std::string_view body) {
  auto parsed = ParseJson(Parser(), body);
  if (!parsed) return Unexpected{std::move(parsed).error()};
  simdjson::dom::object root;
  if (parsed->get(root) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::kInvalidArgument, "The request body must be a JSON object.");
  }
  for (const std::string_view field : kUpstreamOverrideFields) {
    simdjson::dom::element ignored;
    if (root[field].get(ignored) == simdjson::SUCCESS) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("'{}' is not accepted: chatd's upstreams and their credentials are set by the "
                                   "operator, not per request.",
                                   field),
                       std::string(field));
    }
  }
  EmbeddingsInput input;
  std::string_view model;
  simdjson::dom::element value;
  if (root["model"].get(value) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::kInvalidArgument, "Missing required parameter: 'model'.", "model");
  }
  if (value.get(model) != simdjson::SUCCESS || model.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "Invalid 'model': expected a non-empty string.", "model");
  }
  input.model = std::string(model);
  if (root["input"].get(value) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::kInvalidArgument, "Missing required parameter: 'input'.", "input");
  }
  std::string_view text;
  simdjson::dom::array items;
  if (value.get(text) == simdjson::SUCCESS) {
    input.request.input.emplace_back(text);
  } else if (value.get(items) == simdjson::SUCCESS) {
    if (items.size() == 0) {
      return MakeError(ErrorCode::kInvalidArgument, "Invalid 'input': empty array. Expected at least one input.", "input");
    }
    if (items.size() > kMaxEmbeddingInputs) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("Invalid 'input': at most {} inputs per request.", kMaxEmbeddingInputs), "input");
    }
    std::size_t index = 0;
    for (simdjson::dom::element item : items) {
      if (item.get(text) != simdjson::SUCCESS) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("Invalid 'input[{}]': chatd accepts text inputs (strings), not token arrays.", index),
                         fmt::format("input[{}]", index));
      }
      input.request.input.emplace_back(text);
      ++index;
    }
  } else {
    return MakeError(ErrorCode::kInvalidArgument, "Invalid 'input': expected a string or an array of strings.", "input");
  }
  for (std::size_t i = 0; i < input.request.input.size(); ++i) {
    if (input.request.input[i].empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "Invalid 'input': inputs must not be empty strings.",
                       input.request.input.size() == 1 ? std::string("input") : fmt::format("input[{}]", i));
    }
    input.bytes += input.request.input[i].size();
  }
  if (root["encoding_format"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    std::string_view format;
    if (value.get(format) != simdjson::SUCCESS || (format != "float" && format != "base64")) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "Invalid value for 'encoding_format': expected 'float' or 'base64'.", "encoding_format");
    }
    input.base64 = format == "base64";
  }
  if (root["dimensions"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    std::int64_t dimensions = 0;
    if (value.get(dimensions) != simdjson::SUCCESS || dimensions < 1 || dimensions > 65536) {
      return MakeError(ErrorCode::kInvalidArgument, "Invalid 'dimensions': expected a positive integer.", "dimensions");
    }
    input.request.dimensions = static_cast<int>(dimensions);
  }
  if (root["user"].get(value) == simdjson::SUCCESS && !value.is_null() && !value.is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, "Invalid type for 'user': expected a string.", "user");
  }
  return input;
}

}  // namespace

class AnswerFormat {
 public:
  virtual ~AnswerFormat() = default;
  /// The client's body for a whole upstream answer (`usage`: what was accounted).
  virtual Expected<std::string> Body(std::string answer, const TokenUsage& usage) = 0;
  /// What a stream starts with, before any upstream event.
  virtual void Begin(std::int64_t prompt_estimate, std::string& out) = 0;
  /// One upstream event's data (not [DONE]); `forward`: the meter's verdict for OpenAI's form.
  virtual void Event(std::string_view data, bool forward, std::string& out) = 0;
  /// The stream completed (the upstream's [DONE], or its end after a finish reason).
  virtual void End(const TokenUsage& usage, std::string& out) = 0;
  /// The stream failed: its last event.
  virtual void Fail(const Error& error, std::string& out) = 0;
};

namespace {

class OpenAiFormat final : public AnswerFormat {
 public:
  Expected<std::string> Body(std::string answer, const TokenUsage&) override { return answer; }
  void Begin(std::int64_t, std::string&) override {}
  void Event(std::string_view data, bool forward, std::string& out) override {
    if (!forward) return;
    out += "data: ";
    out += data;
    out += "\n\n";
  }
  void End(const TokenUsage&, std::string& out) override { out += "data: [DONE]\n\n"; }
  void Fail(const Error& error, std::string& out) override { out += ErrorEvent(error); }
};

class AnthropicFormat final : public AnswerFormat {
 public:
  AnthropicFormat(const std::string& id, const std::string& model) : id_(id), model_(model), stream_(id, model) {}
  Expected<std::string> Body(std::string answer, const TokenUsage& usage) override {
    return OpenAiToAnthropic(answer, id_, model_, usage);
  }
  void Begin(std::int64_t prompt_estimate, std::string& out) override { stream_.Begin(prompt_estimate, out); }
  void Event(std::string_view data, bool, std::string& out) override { stream_.Chunk(data, out); }
  void End(const TokenUsage& usage, std::string& out) override { stream_.End(usage, out); }
  void Fail(const Error& error, std::string& out) override { AnthropicStream::Fail(error, out); }

 private:
  std::string id_;
  std::string model_;
  AnthropicStream stream_;
};

// Anthropic's message ids: "msg_" and a UUIDv7 in hex (unique, and sorted by time).
std::string NewMessageId() {
  std::string id = "msg_";
  for (const char c : NewUuidV7()) {
    if (c != '-') id += c;
  }
  return id;
}

}  // namespace

Error ModelNotFound(std::string_view model) {
  return Error{ErrorCode::kNotFound,
               fmt::format("The model `{}` does not exist or you do not have access to it.", model), "model"};
}

// One admitted request: what Finish needs to settle and record it.
struct Gateway::Exchange {
  Ticket ticket;
  const llm::ModelInfo* model = nullptr;
  SteadyClock::time_point started;
  SystemTime created_at;
  std::optional<std::int64_t> ttft_ms;
};

void Gateway::Finish(const Exchange& exchange, const TokenUsage& usage, UsageStatus status) {
  const double cost = Cost(*exchange.model, usage);
  admission_.Settle(exchange.ticket, usage, cost, status);
  UsageEvent event;
  event.api_key_id = exchange.ticket.caller.api_key_id;
  event.user_id = exchange.ticket.caller.user_id;
  event.model = exchange.model->id;
  event.provider = exchange.model->provider;
  event.usage = usage;
  event.cost = cost;
  event.latency_ms = MillisecondsSince(exchange.started);
  event.ttft_ms = exchange.ttft_ms;
  event.status = status;
  event.created_at = exchange.created_at;
  if (status == UsageStatus::kCached) {  // no model call to count: gateway_cache_hits_total has it
    usage_.Record(std::move(event));
    return;
  }
  const double seconds = static_cast<double>(event.latency_ms) / 1000;
  metrics_.Record(event.provider, event.model, UsageStatusName(status), seconds, usage.prompt_tokens,
                  usage.completion_tokens);
  if (event.ttft_ms) {
    metrics_.first_token.WithLabels({event.provider, event.model}).Observe(static_cast<double>(*event.ttft_ms) / 1000);
  }
  usage_.Record(std::move(event));
}

Task<Expected<CompletionOutcome>> Gateway::ChatCompletions(const Caller& caller, std::string_view body,
                                                           ClientChannel& channel) {
  auto prepared = PrepareCompletion(body);
  if (!prepared) co_return Unexpected{std::move(prepared).error()};
  OpenAiFormat format;
  co_return co_await Complete(caller, *prepared, channel, format, body);
}

Task<Expected<CompletionOutcome>> Gateway::Messages(const Caller& caller, std::string_view body,
                                                    ClientChannel& channel) {
  auto translated = AnthropicToOpenAi(body);
  if (!translated) co_return Unexpected{std::move(translated).error()};
  auto prepared = PrepareCompletion(*translated);
  if (!prepared) co_return Unexpected{std::move(prepared).error()};
  AnthropicFormat format(NewMessageId(), prepared->model);
  co_return co_await Complete(caller, *prepared, channel, format, std::nullopt);
}

Task<Expected<CompletionOutcome>> Gateway::Complete(const Caller& caller, const PreparedCompletion& prepared,
                                                    ClientChannel& channel, AnswerFormat& format,
                                                    std::optional<std::string_view> cacheable_body) {
  Exchange exchange;
  exchange.started = SteadyClock::now();
  exchange.created_at = clock_.Now();
  auto resolved = models_.Resolve(prepared.model);
  if (!resolved) co_return Unexpected{ModelNotFound(prepared.model)};
  const llm::ModelInfo& model = resolved->info;
  if (model.embeddings) {
    co_return MakeError(ErrorCode::kInvalidArgument,
                        fmt::format("The model `{}` is an embedding model: use /v1/embeddings.", model.id), "model");
  }
  exchange.model = &model;
  CacheLookup cached;
  if (cache_ != nullptr && cacheable_body) {
    Task<CacheLookup> finding = cache_->Find(caller, model.id, prepared, *cacheable_body);
    cached = co_await std::move(finding);
  }
  if (cached.status == CacheStatus::kHit) {
    // A stored answer costs no tokens, but it is still a request, of a model the key must
    // still be allowed: admission sees it as one of zero tokens.
    auto admitted = co_await admission_.Admit(caller, model.id, 0);
    if (!admitted) co_return Unexpected{std::move(admitted).error()};
    exchange.ticket = std::move(*admitted);
    channel.AddHeader(std::string(kCacheHeader), std::string(CacheStatusName(cached.status)));
    Finish(exchange, TokenUsage{}, UsageStatus::kCached);
    co_return CompletionOutcome{.streamed = false, .body = *cached.body};
  }
  const std::int64_t completion_budget = prepared.max_tokens.value_or(config_.default_max_tokens);
  const std::int64_t estimate = prepared.prompt_tokens_estimate + prepared.n * completion_budget;
  auto ticket = co_await admission_.Admit(caller, model.id, estimate);
  if (!ticket) co_return Unexpected{std::move(ticket).error()};
  exchange.ticket = std::move(*ticket);
  if (cacheable_body) channel.AddHeader(std::string(kCacheHeader), std::string(CacheStatusName(cached.status)));

  // From here every path ends in Finish(). The client leaving aborts the upstream call.
  CancelSignal cancel;
  bool client_gone = false;
  Watch watch(channel, [&cancel, &client_gone] {
    client_gone = true;
    cancel.Cancel();
  });
  CompletionMeter meter(prepared.client_wants_usage);
  const std::int64_t prompt_estimate = prepared.prompt_tokens_estimate;

  llm::CompletionRequest request;
  request.model = model.upstream_model;
  request.fields = prepared.fields;
  request.stream = prepared.stream;
  request.first_byte_timeout = config_.first_byte_timeout;
  request.idle_timeout = config_.idle_timeout;
  request.cancel = &cancel;
  auto response = co_await resolved->provider.Complete(request);
  if (!response) {
    const UsageStatus status = client_gone ? UsageStatus::kCancelled : UsageStatus::kError;
    Finish(exchange, TokenUsage{}, status);  // nothing was generated
    co_return Unexpected{std::move(response).error()};
  }
  llm::CompletionResponse& upstream = **response;

  if (!prepared.stream) {
    std::string answer;
    while (true) {
      auto piece = co_await upstream.Read();
      if (!piece) {
        const UsageStatus status = client_gone ? UsageStatus::kCancelled : UsageStatus::kError;
        Finish(exchange, meter.Usage(prompt_estimate), status);
        co_return Unexpected{std::move(piece).error()};
      }
      if (!*piece) break;
      if (answer.size() + (*piece)->size() > config_.max_response_bytes) {
        upstream.Cancel();
        Finish(exchange, TokenUsage{.prompt_tokens = prompt_estimate, .estimated = true}, UsageStatus::kError);
        co_return MakeError(ErrorCode::kUpstreamUnavailable,
                            fmt::format("{} answered with more than {} bytes", model.provider, config_.max_response_bytes));
      }
      if (answer.empty()) {
        answer = std::move(**piece);  // a whole answer comes in one piece: not copied
      } else {
        answer += **piece;
      }
    }
    meter.OnBody(answer);
    const TokenUsage usage = meter.Usage(prompt_estimate);
    // Only a whole answer is worth repeating: one that says how it ended.
    if (cached.status == CacheStatus::kMiss && meter.finished()) cache_->Store(cached, answer);
    auto client_body = format.Body(std::move(answer), usage);
    Finish(exchange, usage, client_body ? UsageStatus::kOk : UsageStatus::kError);
    if (!client_body) co_return Unexpected{std::move(client_body).error()};
    co_return CompletionOutcome{.streamed = false, .body = std::move(*client_body)};
  }

  const bool begun = co_await channel.BeginEvents();
  if (!begun) {
    cancel.Cancel();
    Finish(exchange, meter.Usage(prompt_estimate), UsageStatus::kCancelled);
    co_return CompletionOutcome{.streamed = true, .body = {}};
  }
  std::string opening;
  format.Begin(prompt_estimate, opening);
  if (!opening.empty()) {
    const bool opened = co_await channel.Write(opening);
    if (!opened) {
      cancel.Cancel();
      upstream.Cancel();
      Finish(exchange, meter.Usage(prompt_estimate), UsageStatus::kCancelled);
      co_return CompletionOutcome{.streamed = true, .body = {}};
    }
  }
  llm::SseParser parser;
  UsageStatus status = UsageStatus::kOk;
  bool ended = false;  // [DONE] seen, or the stream was ended with an error event
  // The first event must come within the first-byte timeout, each next one within the idle
  // timeout of the previous: keep-alive comments do not count as progress.
  bool any_event = false;
  SteadyClock::time_point deadline = SteadyClock::now() + upstream.first_byte_timeout();
  while (!ended) {
    auto piece = co_await upstream.Read(deadline);
    if (!piece) {
      if (client_gone || IsCancel(piece.error())) {
        status = UsageStatus::kCancelled;
        break;
      }
      status = UsageStatus::kError;
      Error failure = std::move(piece).error();
      if (failure.code == ErrorCode::kUpstreamTimeout) {
        const milliseconds waited = any_event ? upstream.idle_timeout() : upstream.first_byte_timeout();
        failure.message = fmt::format("no {}token from {} within {} ms", any_event ? "" : "first ", model.provider,
                                      waited.count());
      }
      log::Warn("upstream stream failed", {{"model", model.id}, {"error", failure.message}});
      std::string event;
      format.Fail(failure, event);
      co_await channel.Write(event);
      break;
    }
    if (!*piece) {  // the body ended without [DONE]
      std::string last;
      if (meter.finished()) {
        format.End(meter.Usage(prompt_estimate), last);  // complete all the same: the client gets its end
      } else {
        status = UsageStatus::kError;
        const Error broken{ErrorCode::kUpstreamUnavailable,
                           fmt::format("{} ended the stream before the answer was complete", model.provider)};
        format.Fail(broken, last);
      }
      co_await channel.Write(last);
      break;
    }
    if (auto fed = parser.Feed(**piece); !fed) {
      upstream.Cancel();
      status = UsageStatus::kError;
      std::string event;
      format.Fail(fed.error(), event);
      co_await channel.Write(event);
      break;
    }
    std::string out;
    while (!ended) {
      auto event = parser.Next();
      if (!event) break;
      any_event = true;
      deadline = SteadyClock::now() + upstream.idle_timeout();
      const CompletionMeter::Verdict verdict = meter.OnEvent(event->data);
      if (verdict.done) {
        format.End(meter.Usage(prompt_estimate), out);
      } else {
        format.Event(event->data, verdict.forward, out);
      }
      if (verdict.error) status = UsageStatus::kError;
      ended = verdict.done || verdict.error;
    }
    if (!exchange.ttft_ms && meter.saw_output()) exchange.ttft_ms = MillisecondsSince(exchange.started);
    if (out.empty()) continue;
    const bool written = co_await channel.Write(out);
    if (!written) {
      cancel.Cancel();
      status = UsageStatus::kCancelled;
      break;
    }
  }
  if (ended && status == UsageStatus::kOk) {
    // Read the body's end, which follows [DONE] at once, so the upstream connection goes
    // back to the pool; an upstream that keeps the stream open is not waited for.
    auto rest = co_await upstream.Read(SteadyClock::now() + kDrainWait);
    if (!rest || *rest) upstream.Cancel();
  } else if (status != UsageStatus::kOk) {
    upstream.Cancel();
  }
  Finish(exchange, meter.Usage(prompt_estimate), status);
  co_return CompletionOutcome{.streamed = true, .body = {}};
}

Task<Expected<std::string>> Gateway::Embeddings(const Caller& caller, std::string_view body, ClientChannel& channel) {
  Exchange exchange;
  exchange.started = SteadyClock::now();
  exchange.created_at = clock_.Now();
  auto input = ReadEmbeddingsBody(body);
  if (!input) co_return Unexpected{std::move(input).error()};
  auto resolved = models_.Resolve(input->model);
  if (!resolved) co_return Unexpected{ModelNotFound(input->model)};
  const llm::ModelInfo& model = resolved->info;
  if (!model.embeddings) {
    co_return MakeError(ErrorCode::kInvalidArgument,
                        fmt::format("The model `{}` is a chat model, not an embedding model.", model.id), "model");
  }
  exchange.model = &model;
  const std::int64_t estimate = EstimateTokens(input->bytes);
  auto ticket = co_await admission_.Admit(caller, model.id, estimate);
  if (!ticket) co_return Unexpected{std::move(ticket).error()};
  exchange.ticket = std::move(*ticket);
  // Embedding calls are short and not cancellable mid-way; a client that left is only
  // recorded as such.
  bool client_gone = false;
  Watch watch(channel, [&client_gone] { client_gone = true; });

  input->request.model = model.upstream_model;
  auto embedded = co_await resolved->provider.Embed(input->request);
  if (!embedded) {
    Finish(exchange, TokenUsage{}, client_gone ? UsageStatus::kCancelled : UsageStatus::kError);
    co_return Unexpected{std::move(embedded).error()};
  }
  TokenUsage usage;
  usage.prompt_tokens = embedded->usage.prompt_tokens;
  if (usage.prompt_tokens == 0) {
    usage.prompt_tokens = estimate;
    usage.estimated = true;
  }

  std::string out;
  std::size_t floats = 0;
  for (const auto& vector : embedded->vectors) floats += vector.size();
  out.reserve(64 + floats * (input->base64 ? 6 : 12) + embedded->vectors.size() * 64);
  out += R"({"object":"list","data":[)";
  for (std::size_t i = 0; i < embedded->vectors.size(); ++i) {
    const std::vector<float>& vector = embedded->vectors[i];
    if (i > 0) out += ',';
    fmt::format_to(std::back_inserter(out), R"({{"object":"embedding","index":{},"embedding":)", i);
    if (input->base64) {
      // Little-endian float32, as OpenAI sends them (and the SDKs decode).
      std::string bytes(vector.size() * sizeof(float), '\0');
      for (std::size_t j = 0; j < vector.size(); ++j) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, &vector[j], sizeof bits);
        for (int b = 0; b < 4; ++b) bytes[j * 4 + static_cast<std::size_t>(b)] = static_cast<char>((bits >> (8 * b)) & 0xFF);
      }
      out += '"';
      AppendBase64(out, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
      out += '"';
    } else {
      out += '[';
      for (std::size_t j = 0; j < vector.size(); ++j) {
        if (j > 0) out += ',';
        const float x = std::isfinite(vector[j]) ? vector[j] : 0.0f;
        fmt::format_to(std::back_inserter(out), "{}", x);
      }
      out += ']';
    }
    out += '}';
  }
  out += R"(],"model":")";
  AppendJsonEscaped(out, model.id);
  fmt::format_to(std::back_inserter(out), R"(","usage":{{"prompt_tokens":{},"total_tokens":{}}}}})", usage.prompt_tokens,
                 usage.prompt_tokens);
  Finish(exchange, usage, client_gone ? UsageStatus::kCancelled : UsageStatus::kOk);
  co_return out;
}

std::string Gateway::ListModels() const {
  JsonWriter json;
  json.BeginObject().Field("object", "list").Key("data").BeginArray();
  for (const llm::ModelInfo& model : models_.List()) WriteModel(json, model);
  json.EndArray().EndObject();
  return std::move(json).str();
}

Expected<std::string> Gateway::GetModel(std::string_view id) const {
  if (id.empty()) return Unexpected{ModelNotFound(id)};  // Resolve("") is the default model
  auto resolved = models_.Resolve(id);
  if (!resolved) return Unexpected{ModelNotFound(id)};
  JsonWriter json;
  WriteModel(json, resolved->info);
  return std::move(json).str();
}

}  // namespace chatd::gateway
