// The provider interfaces: what the chat turn and the OpenAI-compatible gateway see of a
// language model. A Provider turns a ChatRequest into a pull-based ChatStream of chunks,
// and texts into embeddings. Implementations: DemoProvider (built in, and the test
// double); OpenAiProvider (llm/openai_provider.hpp) for every OpenAI-compatible upstream;
// and the router's decorators (llm/router.hpp: retries, circuit breaker, fallbacks).
//
// Threads: everything runs on the caller's I/O executor (the one the calling coroutine
// runs on, found with `co_await asio::this_coro::executor`), and nothing blocks. A
// ChatStream belongs to the executor that created it: call Next() and Cancel() only from
// there. Providers themselves are shared by all I/O threads and must be thread-safe
// (stateless, or synchronised internally).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/cancel.hpp"
#include "core/expected.hpp"

namespace chatd::llm {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

/// A public model's own bounds on the calls made for it (MODELS_FILE [[models]]
/// first_byte_timeout, idle_timeout, retries). What is set replaces the upstream's own
/// settings, which replace the request's defaults (LLM_*): a slow model can wait longer
/// than its upstream's other models, an interactive one give up sooner. FallbackChain sets
/// them per candidate, so each fallback keeps its own.
struct CallLimits {
  std::optional<std::chrono::milliseconds> first_byte_timeout;
  std::optional<std::chrono::milliseconds> idle_timeout;
  std::optional<int> retries;  // attempts after the first, at each upstream
};

struct ChatRequest {
  std::string model;  // the provider's model name (ModelInfo::upstream_model), not the public one
  std::vector<ChatMessage> messages;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<std::int64_t> max_tokens;
  /// Bound the wait for the first chunk and between two chunks. Providers enforce them:
  /// past one, Next() fails with kUpstreamTimeout.
  std::chrono::milliseconds first_byte_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  CallLimits limits;
};

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

struct ChatChunk {
  std::string delta;           // text to append; may be empty
  std::string finish_reason;   // set on the last chunk only: "stop" or "length"
  std::optional<Usage> usage;  // on the last chunk, when the provider reports it
};

/// One streamed completion. Pull-based: the consumer asks for the next chunk when it is
/// ready for it, so a slow client slows the read from the upstream instead of growing a
/// buffer. Not thread-safe: use it from the executor that created it.
///
/// Lifetime: do not destroy a stream while a Next() is pending; to stop early, Cancel()
/// and let the pending Next() complete (it does so promptly), then drop the stream.
class ChatStream {
 public:
  virtual ~ChatStream() = default;

  /// The next chunk; std::nullopt once the stream ended normally (after the chunk that
  /// carried finish_reason). Errors mid-stream: kUpstreamTimeout (first_byte_timeout or
  /// idle_timeout passed), kUpstreamUnavailable (the upstream failed or broke the
  /// protocol), kUnavailable "cancelled" after Cancel(). After an error, the stream is
  /// over: further calls return an error too. At most one Next() may be pending.
  virtual Task<Expected<std::optional<ChatChunk>>> Next() = 0;

  /// Aborts the upstream request at once (closes the connection, stops timers). A pending
  /// Next() completes promptly with kUnavailable "cancelled", and so does every later
  /// one. Idempotent; safe at any time, including after the end, from the stream's
  /// executor. Does not suspend.
  virtual void Cancel() = 0;
};

struct EmbeddingRequest {
  std::string model;  // the provider's model name
  std::vector<std::string> input;
  std::optional<int> dimensions;
  CallLimits limits;  // its first_byte_timeout bounds the wait for the answer
};

struct Embeddings {
  std::vector<std::vector<float>> vectors;  // one per input, in input order
  Usage usage;                              // prompt_tokens only
  std::string model;
};

/// An OpenAI chat-completions request passed through as the client wrote it (the
/// gateway's path): everything but the model is the client's JSON, so tools, response
/// formats, logprobs and fields chatd has never heard of reach the upstream untouched.
struct CompletionRequest {
  std::string model;  // the provider's model name; set per candidate by FallbackChain
  /// The members of the client's body except "model", as JSON text without the braces
  /// (`"messages":[...],"stream":true`), possibly empty. Shared: candidates and retries
  /// send the same bytes without copying them.
  std::shared_ptr<const std::string> fields;
  bool stream = false;  // the fields say "stream": true (they ask for include_usage too)
  std::chrono::milliseconds first_byte_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  CallLimits limits;
  /// Aborts the call in any phase (the client left). Optional; must outlive the call.
  CancelSignal* cancel = nullptr;
};

/// A successful (2xx) upstream answer to a CompletionRequest: a JSON body
/// (`chat.completion`) or, when streamed, an SSE body of `chat.completion.chunk` events
/// ending with `data: [DONE]`. Read it as it arrives. Belongs to the executor that
/// created it.
class CompletionResponse {
 public:
  virtual ~CompletionResponse() = default;
  /// "application/json" or "text/event-stream" (as the upstream said).
  virtual std::string_view content_type() const = 0;
  using TimePoint = std::chrono::steady_clock::time_point;
  /// The next piece of the body, in the upstream's framing (cut anywhere), or
  /// std::nullopt at its end. Each read waits at most the request's idle timeout, and not
  /// past `not_after` (both kUpstreamTimeout); kUpstreamUnavailable when the upstream
  /// breaks off; kUnavailable "cancelled" after Cancel() or the request's CancelSignal.
  /// At most one pending read.
  virtual Task<Expected<std::optional<std::string>>> Read(TimePoint not_after = TimePoint::max()) = 0;
  /// The waits this call was given, after the model's and the upstream's settings: a
  /// reader that counts whole events (not keep-alive comments) bounds them by these.
  virtual std::chrono::milliseconds first_byte_timeout() const = 0;
  virtual std::chrono::milliseconds idle_timeout() const = 0;
  /// Aborts the upstream request at once (closes its connection). Idempotent.
  virtual void Cancel() = 0;
};

/// Worth handing a call that failed before its first byte to another deployment or model:
/// anything but a request that is invalid everywhere or a cancel by our own side.
/// FallbackChain and BalancedProvider follow this one rule.
inline bool FallbackWorthy(const Error& error) {
  return error.code != ErrorCode::kInvalidArgument &&
         !(error.code == ErrorCode::kUnavailable && error.message == "cancelled");
}

/// What the registry knows about one public model.
struct ModelInfo {
  std::string id;                   // the public name clients send ("demo", "gpt-4o")
  std::string provider;             // Provider::name() of the provider serving it
  std::string upstream_model;       // the name sent to that provider (ChatRequest::model)
  std::int64_t context_window = 0;  // in tokens: the chat turn fits history into it
  bool embeddings = false;          // an embedding model (else a chat model)
  std::string owned_by;             // /v1/models "owned_by"
  double input_price_per_million = 0;   // USD per 1M prompt tokens (0: unknown or free)
  double output_price_per_million = 0;  // USD per 1M completion tokens
};

class Provider {
 public:
  virtual ~Provider() = default;

  /// A short stable name for logs, metrics labels and ModelInfo::provider ("demo", "openai").
  virtual std::string_view name() const = 0;

  /// Starts a completion. Runs on the caller's executor; the returned stream lives there.
  /// Errors before the first token are returned here, not by Next(): kInvalidArgument
  /// (the request is invalid for this model), kNotFound (unknown model),
  /// kUpstreamUnavailable / kUpstreamTimeout (the upstream could not be reached or
  /// refused — nothing was sent to the client yet, so the caller may retry or fall back).
  /// The request is not referenced after this completes.
  virtual Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) = 0;

  /// Embeds every input. Runs on the caller's executor. Errors: kInvalidArgument (e.g.
  /// unsupported `dimensions`, not an embedding model), kNotFound, kUpstream*.
  virtual Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) = 0;

  /// Sends a pass-through chat completion and returns the upstream's answer once its head
  /// arrived with a 2xx status; the body is read from the returned response. Errors before
  /// that are returned here, like StreamChat's (an upstream's 4xx/5xx mapped by
  /// UpstreamError, with its message and `param` when it is the request's fault), so the
  /// router can retry and fall back before the client has seen a byte.
  ///
  /// The default serves providers that only speak ChatStream (the demo models, test
  /// doubles): it reads the text parts of the messages, `max_tokens` /
  /// `max_completion_tokens`, `temperature` and `top_p`, calls StreamChat and writes its
  /// chunks in OpenAI's format (llm/synthesized_completion.cpp). Such a model has no tools:
  /// asked for them, it answers text.
  virtual Task<Expected<std::unique_ptr<CompletionResponse>>> Complete(const CompletionRequest& request);
};

}  // namespace chatd::llm
