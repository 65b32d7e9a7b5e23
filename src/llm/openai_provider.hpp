// The OpenAI-compatible provider: chat completions streamed over SSE, embeddings and the
// model list, over chatd's HTTP client. One class serves every upstream that speaks the
// OpenAI API: OpenAI itself, DeepSeek, Ollama, vLLM, llama.cpp's server, and proxies.
//
//   POST {base_url}/chat/completions  {"stream":true,"stream_options":{"include_usage":true}}
//   POST {base_url}/embeddings
//   GET  {base_url}/models
//
// Errors before the first token come back from StreamChat (so the router may retry or
// fall back): an upstream's 4xx/5xx answer is mapped by UpstreamError. The stream holds
// back the chunk with finish_reason until the usage chunk (sent after it when
// include_usage is on) or [DONE], so the last ChatChunk carries both.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/client.hpp"
#include "llm/provider.hpp"

namespace chatd::llm {

struct OpenAiConfig {
  std::string name = "openai";  // Provider::name(): logs, metrics, ModelInfo::provider
  std::string base_url = "https://api.openai.com/v1";
  std::string api_key;  // empty: no Authorization header (local servers need none)
  /// Per-upstream overrides; unset: the HTTP client's connect timeout and the request's
  /// first-byte and idle timeouts (LLM_* settings). A model's CallLimits override these.
  std::optional<std::chrono::milliseconds> connect_timeout;
  std::optional<std::chrono::milliseconds> first_byte_timeout;
  std::optional<std::chrono::milliseconds> idle_timeout;
};

/// An upstream's non-2xx answer as an Error: 400/404/413/422 are the request's fault
/// (kInvalidArgument, kNotFound) and carry the upstream's message; 401/403 are chatd's
/// credentials (kInternal, without the upstream's message, which may echo the key); 408
/// kUpstreamTimeout; 429 kRateLimited; 5xx and the rest kUpstreamUnavailable. Retry-After
/// (seconds) or retry-after-ms fills Error::retry_after.
Error UpstreamError(std::string_view provider, int status, std::string_view body, std::string_view retry_after,
                    std::string_view retry_after_ms);

class OpenAiProvider final : public Provider {
 public:
  /// `client` must outlive the provider.
  OpenAiProvider(OpenAiConfig config, http::Client& client);

  std::string_view name() const override { return config_.name; }
  const OpenAiConfig& config() const { return config_; }

  /// Thread-safe: the provider holds only its config; each call has its own connection.
  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override;
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override;
  /// The pass-through: POST {base_url}/chat/completions with the client's fields and
  /// `model` set to request.model; the upstream's body comes back as it arrives.
  Task<Expected<std::unique_ptr<CompletionResponse>>> Complete(const CompletionRequest& request) override;
  /// The ids the upstream's GET /models lists.
  Task<Expected<std::vector<std::string>>> ListModels();

 private:
  http::ClientRequest Request(http::Method method, std::string_view path) const;
  // The wait a call gets: the model's, else this upstream's, else `fallback` (the request's).
  std::chrono::milliseconds FirstByteTimeout(const CallLimits& model, std::chrono::milliseconds fallback) const;
  std::chrono::milliseconds IdleTimeout(const CallLimits& model, std::chrono::milliseconds fallback) const;
  // Sends `request` and reads a whole JSON answer (bounded), mapping non-2xx answers.
  Task<Expected<std::string>> Exchange(const http::ClientRequest& request, std::size_t max_bytes);

  OpenAiConfig config_;
  http::Client& client_;
};

}  // namespace chatd::llm
