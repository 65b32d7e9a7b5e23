// The OpenAI-compatible gateway: what /v1/chat/completions, /v1/embeddings and
// /v1/models do, apart from HTTP (api/gateway_api.cpp adapts it).
//
// Life of a completion (the request's I/O thread throughout):
//   validate (gateway/completion_request.hpp: 400 with param) → resolve the public model
//   (404 model_not_found) → Admission::Admit (429/403 from key limits and budgets) →
//   Provider::Complete through the model's FallbackChain (retries, fallbacks, breaker — all
//   before the first byte) → the answer, passed through:
//     - not streamed: the upstream's body, returned as it came;
//     - streamed: each SSE event written to the client as soon as it is parsed (the events
//       of one upstream read in one write), with the usage chunk chatd asked for stripped
//       when the client did not ask; `[DONE]` always ends a successful stream (also when
//       the upstream ended without it after a finish_reason); an upstream failure
//       mid-stream ends it with `data: {"error":{...}}`, which the SDKs raise.
//   The client leaving (the connection closing, or a write failing) cancels the upstream
//   call in whatever phase it is: connecting, waiting for its head, or streaming.
//   → Admission::Settle and UsageSink::Record, once, with the usage the upstream reported
//   or, when it reported none or the stream ended early, an estimate of it.
//
// With the response cache (gateway/response_cache.hpp) on, an eligible /v1/chat/completions
// request is looked up after the model is resolved: a hit is admitted as a zero-token
// request (it still counts against RPM), answered with the stored body, and recorded with
// status `cached`; a miss takes the path above and stores the complete answer. Either
// way, and for a bypass, the response says so in `x-chatd-cache`.
//
// POST /v1/messages (Anthropic's Messages API) is translated into a chat completion first
// and takes the same path; only the answer's form differs (AnswerFormat, gateway.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "gateway/admission.hpp"
#include "gateway/completion_request.hpp"
#include "gateway/response_cache.hpp"
#include "gateway/usage.hpp"
#include "llm/call_metrics.hpp"
#include "llm/model_registry.hpp"

namespace chatd::gateway {

struct GatewayConfig {
  std::chrono::milliseconds first_byte_timeout{std::chrono::seconds(30)};  // LLM_FIRST_BYTE_TIMEOUT
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};        // LLM_IDLE_TIMEOUT
  /// Completion tokens assumed for admission when a request sets no maximum (LLM_MAX_TOKENS).
  std::int64_t default_max_tokens = 1024;
  /// The largest non-streamed upstream answer passed on (a bigger one is a 502).
  std::size_t max_response_bytes = 32 * 1024 * 1024;
};

/// What the gateway sees of one request's HTTP exchange. Same thread as the gateway call.
class ClientChannel {
 public:
  virtual ~ClientChannel() = default;
  /// Sends the head of a 200 `text/event-stream` response. False when the client is gone.
  virtual Task<bool> BeginEvents() = 0;
  /// Writes SSE bytes as they are. False when the client is gone: stop then.
  virtual Task<bool> Write(std::string_view bytes) = 0;
  /// Calls `on_gone` once if the client disconnects before the gateway call returns.
  virtual void WatchClient(std::function<void()> on_gone) = 0;
  /// A header for the response, whichever it is: the stream's head (call before
  /// BeginEvents), the JSON answer, or the error that ends the call.
  virtual void AddHeader(std::string name, std::string value) = 0;
};

/// The result of a completion: for a stream, the response was written to the channel
/// (`streamed`); otherwise `body` is the JSON to answer with status 200.
struct CompletionOutcome {
  bool streamed = false;
  std::string body;
};

/// How a completion's answer reaches the client: OpenAI's own bytes passed through
/// (/v1/chat/completions), or translated (/v1/messages). Defined in gateway.cpp.
class AnswerFormat;

class Gateway {
 public:
  /// Everything referenced must outlive the gateway. `cache` null: no response cache.
  Gateway(GatewayConfig config, const llm::ModelRegistry& models, Admission& admission, UsageSink& usage,
          const Clock& clock, llm::CallMetrics& metrics, ResponseCache* cache = nullptr)
      : config_(config),
        models_(models),
        admission_(admission),
        usage_(usage),
        clock_(clock),
        metrics_(metrics),
        cache_(cache) {}

  /// POST /v1/chat/completions. Errors before a stream began (the JSON error response):
  /// kInvalidArgument (param), kNotFound "model" (model_not_found), admission's refusals,
  /// the upstream's (kInvalidArgument/kNotFound with its message, kRateLimited,
  /// kUpstreamUnavailable, kUpstreamTimeout, kInternal for chatd's own credentials).
  /// Once admitted, the channel gets `x-chatd-cache: hit|miss|bypass`.
  Task<Expected<CompletionOutcome>> ChatCompletions(const Caller& caller, std::string_view body,
                                                    ClientChannel& channel);

  /// POST /v1/messages (Anthropic's Messages API, gateway/anthropic.hpp): translated into a
  /// chat completion, then the same path; the answer (or stream) translated back. Errors as
  /// for ChatCompletions, with `param` naming the Anthropic field when the body is invalid.
  Task<Expected<CompletionOutcome>> Messages(const Caller& caller, std::string_view body, ClientChannel& channel);

  /// POST /v1/embeddings: the `list` of embeddings as JSON (float arrays, or base64 of
  /// little-endian float32 with encoding_format "base64").
  Task<Expected<std::string>> Embeddings(const Caller& caller, std::string_view body, ClientChannel& channel);

  /// GET /v1/models: every model (not the aliases) as OpenAI's `list` of `model` objects.
  std::string ListModels() const;
  /// GET /v1/models/{id}: one model (an alias resolves to its model); kNotFound otherwise.
  Expected<std::string> GetModel(std::string_view id) const;

 private:
  struct Exchange;
  // `cacheable_body`: the client's bytes when the answer may come from (and go to) the
  // response cache — /v1/chat/completions; nullopt for the translated /v1/messages.
  Task<Expected<CompletionOutcome>> Complete(const Caller& caller, const PreparedCompletion& prepared,
                                             ClientChannel& channel, AnswerFormat& format,
                                             std::optional<std::string_view> cacheable_body);
  void Finish(const Exchange& exchange, const TokenUsage& usage, UsageStatus status);

  GatewayConfig config_;
  const llm::ModelRegistry& models_;
  Admission& admission_;
  UsageSink& usage_;
  const Clock& clock_;
  llm::CallMetrics& metrics_;
  ResponseCache* cache_;
};

/// The 404 for an unknown model, in OpenAI's words (code "model_not_found" at the edge).
Error ModelNotFound(std::string_view model);

}  // namespace chatd::gateway
