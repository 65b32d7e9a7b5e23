// Routing and resilience between the chat turn and the upstreams. Everything here happens
// before the first token: once StreamChat has returned a stream, the client may have seen
// text, so a failure after that is the turn's to report, never retried here.
//
//   ModelRegistry::Resolve("gpt-4o") ──> FallbackChain   (the model's candidates, in order)
//                                          │  candidate fails before the first token
//                                          ▼
//                                        ResilientProvider (one per upstream: retries with
//                                          │  exponential backoff + jitter, Retry-After,
//                                          ▼  a circuit breaker)
//                                        OpenAiProvider ──> http::Client ──> upstream
//
// The Router builds that graph from the configuration (providers and models, plus what
// upstreams list on GET /models when asked to discover) and registers every model.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/client.hpp"
#include "llm/circuit_breaker.hpp"
#include "llm/model_registry.hpp"
#include "llm/openai_provider.hpp"
#include "llm/provider.hpp"

namespace chatd::llm {

struct RetryPolicy {
  int retries = 2;                                     // attempts after the first (LLM_RETRIES)
  std::chrono::milliseconds backoff{250};              // the first wait; doubles each time
  std::chrono::milliseconds max_backoff{8'000};
  std::chrono::milliseconds max_retry_after{30'000};  // a longer Retry-After is not waited for
};

/// Worth another attempt at the same upstream: it could not be reached, timed out, failed
/// (5xx) or asked us to slow down (429).
bool Retryable(ErrorCode code);

/// One upstream with retries and a circuit breaker: StreamChat and Embed try again on
/// Retryable errors, waiting `backoff * 2^n` (capped, with jitter in its upper half) or the
/// upstream's Retry-After, whichever is longer. An open breaker answers
/// kUpstreamUnavailable at once. Thread-safe; the waits are timers on the caller's executor.
class ResilientProvider final : public Provider {
 public:
  ResilientProvider(Provider& upstream, RetryPolicy retry, BreakerConfig breaker)
      : upstream_(upstream), retry_(retry), breaker_(breaker) {}

  std::string_view name() const override { return upstream_.name(); }
  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override;
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override;
  /// Retried like StreamChat (until the request's CancelSignal fires).
  Task<Expected<std::unique_ptr<CompletionResponse>>> Complete(const CompletionRequest& request) override;

  CircuitBreaker& breaker() { return breaker_; }

 private:
  // After failed attempt `attempt` (from 1): whether to try again, having waited as the
  // policy and `error` ask.
  Task<bool> PrepareRetry(int attempt, const Error& error);

  Provider& upstream_;
  RetryPolicy retry_;
  CircuitBreaker breaker_;
};

/// One public model's candidates: its own deployment first, then its fallbacks, each a
/// provider and the model name that provider knows. A candidate that fails before the
/// first token with anything but an invalid request (or a cancel) hands over to the next.
class FallbackChain final : public Provider {
 public:
  struct Candidate {
    Provider* provider;
    std::string upstream_model;
    std::string model;  // the public name, for logs
  };
  explicit FallbackChain(std::vector<Candidate> candidates) : candidates_(std::move(candidates)) {}

  /// The first candidate's provider (ModelRegistry checks ModelInfo::provider against it).
  std::string_view name() const override { return candidates_.front().provider->name(); }
  /// request.model is ignored: each candidate gets its own upstream model.
  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override;
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override;
  /// request.model is ignored, as for StreamChat; no next candidate once cancelled.
  Task<Expected<std::unique_ptr<CompletionResponse>>> Complete(const CompletionRequest& request) override;

 private:
  std::vector<Candidate> candidates_;
};

/// An OpenAI-compatible upstream as configured (MODELS_FILE, or OPENAI_* / DEEPSEEK_*).
struct UpstreamConfig {
  OpenAiConfig api;
  RetryPolicy retry;
  BreakerConfig breaker;
  bool discover_models = false;  // offer what GET {base_url}/models lists
};

/// A public model (MODELS_FILE [[models]]).
struct ModelConfig {
  std::string name;
  std::string provider;
  std::string upstream_model;  // empty: the public name
  std::int64_t context_window = 8192;
  double input_price_per_million = 0;   // USD per 1M prompt tokens
  double output_price_per_million = 0;  // USD per 1M completion tokens
  std::vector<std::string> fallbacks;   // public model names, tried in order
  bool embeddings = false;
};

struct RouterConfig {
  std::vector<UpstreamConfig> upstreams;
  std::vector<ModelConfig> models;
};

class Router {
 public:
  /// `client` must outlive the router; the router must outlive the registry it fills.
  /// Upstream names must be unique (the config loader checks).
  Router(RouterConfig config, http::Client& client);

  /// Lists the models of every upstream with discover_models and adds those no
  /// configured model names, as chat models (embedding models when the id says "embed";
  /// audio, image and moderation models are left out). Logs what it found or why it
  /// found nothing. When an upstream cannot be listed and `assumed` (the default model,
  /// when nothing else offers it) is not configured, it is assumed to be that upstream's,
  /// so an upstream that is down at start does not keep chatd down. Run at startup, on
  /// any executor; each listing is bounded (kListTimeout in openai_provider.cpp).
  Task<void> Discover(std::string assumed = {});

  /// Registers every model in `registry`, wrapped in its fallback chain. Fallbacks may name
  /// the router's models or ones already in the registry (e.g. demo). kInvalidArgument
  /// naming the model for an unknown provider or fallback.
  Expected<void> Register(ModelRegistry& registry);

  std::size_t upstream_count() const { return upstreams_.size(); }
  const std::vector<ModelConfig>& models() const { return models_; }

 private:
  struct Upstream {
    UpstreamConfig config;
    std::unique_ptr<OpenAiProvider> api;
    std::unique_ptr<ResilientProvider> resilient;
  };
  Upstream* Find(std::string_view name);

  std::vector<Upstream> upstreams_;
  std::vector<ModelConfig> models_;
  std::vector<std::unique_ptr<FallbackChain>> chains_;
};

}  // namespace chatd::llm
