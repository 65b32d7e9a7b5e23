// Routing and resilience between the chat turn and the upstreams. Everything here happens
// before the first token: once StreamChat has returned a stream, the client may have seen
// text, so a failure after that is the turn's to report, never retried here.
//
//   ModelRegistry::Resolve("gpt-4o") ──> FallbackChain   (the model's candidates, in order)
//                                          │  candidate fails before the first token
//                                          ▼
//                                        BalancedProvider  (a model with several deployments:
//                                          │  weighted or least busy, failover between them)
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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/metrics.hpp"
#include "http/client.hpp"
#include "llm/balanced_provider.hpp"
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

/// The Prometheus metrics of the upstreams (families created once per registry):
///   llm_requests_total{provider,outcome}     every upstream call ("ok" or the error code)
///   llm_retries_total{provider}              calls that were attempts after a failure
///   llm_circuit_breaker_opened_total{provider}
///   llm_time_to_first_token_seconds{provider} from the call to the first text (or end)
///   llm_tokens_total{provider,type}          "prompt" and "completion", as the upstream reports
class LlmMetrics {
 public:
  explicit LlmMetrics(metrics::Registry& registry);

  /// One upstream's children, resolved once.
  struct Upstream {
    LlmMetrics* family;
    std::string provider;
    metrics::Counter* ok;
    metrics::Counter* retries;
    metrics::Counter* breaker_opened;
    metrics::Histogram* time_to_first_token;
    metrics::Counter* prompt_tokens;
    metrics::Counter* completion_tokens;
    void Failed(ErrorCode code) const;  // labels an error outcome (looked up per failure: rare)
  };
  Upstream For(std::string provider);

 private:
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Counter>& retries_;
  metrics::Family<metrics::Counter>& breaker_opened_;
  metrics::Family<metrics::Histogram>& time_to_first_token_;
  metrics::Family<metrics::Counter>& tokens_;
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
  /// `metrics` may be null (no metrics); it must outlive the provider.
  ResilientProvider(Provider& upstream, RetryPolicy retry, BreakerConfig breaker,
                    std::optional<LlmMetrics::Upstream> metrics = std::nullopt)
      : upstream_(upstream), retry_(retry), breaker_(breaker), metrics_(std::move(metrics)) {}

  std::string_view name() const override { return upstream_.name(); }
  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override;
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override;
  /// Retried like StreamChat (until the request's CancelSignal fires).
  Task<Expected<std::unique_ptr<CompletionResponse>>> Complete(const CompletionRequest& request) override;

  CircuitBreaker& breaker() { return breaker_; }

 private:
  // After failed attempt `attempt` (from 1): whether to try again, having waited as the
  // policy (the model's retries, when it sets them) and `error` ask.
  Task<bool> PrepareRetry(int attempt, const CallLimits& limits, const Error& error);

  Provider& upstream_;
  RetryPolicy retry_;
  CircuitBreaker breaker_;
  std::optional<LlmMetrics::Upstream> metrics_;
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
    CallLimits limits;  // the model's own, given to each call made for it
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

/// One upstream serving a public model, and the name it knows the model by.
struct DeploymentConfig {
  std::string provider;
  std::string upstream_model;  // empty: the public name
  int weight = 1;              // its share of the calls (at least 1)
};

/// A public model (MODELS_FILE [[models]]): served by one provider, or balanced over
/// several deployments.
struct ModelConfig {
  std::string name;
  std::string provider;        // one deployment: its provider (empty with `deployments`)
  std::string upstream_model;  // empty: the public name
  std::vector<DeploymentConfig> deployments;  // several, balanced (then provider is empty)
  BalancePolicy balance = BalancePolicy::kWeighted;
  std::vector<std::string> aliases;  // other public names for the model
  std::int64_t context_window = 8192;
  double input_price_per_million = 0;   // USD per 1M prompt tokens
  double output_price_per_million = 0;  // USD per 1M completion tokens
  std::vector<std::string> fallbacks;   // public model names, tried in order
  bool embeddings = false;
  CallLimits limits;  // timeouts and retries of its own, over its upstreams' settings

  /// `deployments`, or provider + upstream_model as the one deployment.
  std::vector<DeploymentConfig> Deployments() const;
};

struct RouterConfig {
  std::vector<UpstreamConfig> upstreams;
  std::vector<ModelConfig> models;
};

class Router {
 public:
  /// `client` (and `metrics`, when given) must outlive the router; the router must outlive
  /// the registry it fills. Upstream names must be unique (the config loader checks).
  Router(RouterConfig config, http::Client& client, metrics::Registry* metrics = nullptr);

  /// Lists the models of every upstream with discover_models and adds those no
  /// configured model names, as chat models (embedding models when the id says "embed";
  /// audio, image and moderation models are left out). Logs what it found or why it
  /// found nothing. When an upstream cannot be listed and `assumed` (the default model,
  /// when nothing else offers it) is not configured, it is assumed to be that upstream's,
  /// so an upstream that is down at start does not keep chatd down. Run at startup, on
  /// any executor; each listing is bounded (kListTimeout in openai_provider.cpp).
  Task<void> Discover(std::string assumed = {});

  /// Registers every model in `registry`, wrapped in its fallback chain whose first
  /// candidate is the model's deployment (a BalancedProvider over them when there are
  /// several), then the models' aliases. Fallbacks may name the router's models or ones
  /// already in the registry (e.g. demo). kInvalidArgument naming the model for an unknown
  /// provider or fallback, or an alias that is taken.
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
  // The candidate that serves `model` itself: its upstream, or a balancer over them.
  Expected<FallbackChain::Candidate> OwnCandidate(const ModelConfig& model);

  std::optional<LlmMetrics> metrics_;
  std::vector<Upstream> upstreams_;
  std::vector<ModelConfig> models_;
  std::vector<std::unique_ptr<BalancedProvider>> balancers_;
  std::vector<std::unique_ptr<FallbackChain>> chains_;
};

}  // namespace chatd::llm
