#include "llm/router.hpp"

#include <algorithm>
#include <map>
#include <random>

#include <boost/asio/redirect_error.hpp>
#include <fmt/format.h>

#include "core/log.hpp"

namespace chatd::llm {
namespace {

using std::chrono::milliseconds;

std::uint64_t Random() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator();
}

// backoff * 2^(attempt-1), capped, then a random point in its upper half: spread out, so
// the callers a failure hit at once do not come back at once.
milliseconds Backoff(const RetryPolicy& policy, int attempt) {
  milliseconds wait = policy.backoff;
  for (int i = 1; i < attempt && wait < policy.max_backoff; ++i) wait *= 2;
  wait = std::min(wait, policy.max_backoff);
  const auto half = wait.count() / 2;
  return milliseconds(half + (half > 0 ? static_cast<std::int64_t>(Random() % static_cast<std::uint64_t>(half + 1)) : 0));
}

bool CountsAgainstUpstream(ErrorCode code) { return Retryable(code); }

// Model ids a /models listing offers that are not for chat or embeddings.
bool OffTopicModel(std::string_view id) {
  for (std::string_view marker : {"whisper", "tts", "dall-e", "moderation", "audio", "realtime", "transcribe", "image",
                                  "davinci", "babbage", "sora"}) {
    if (id.find(marker) != std::string_view::npos) return true;
  }
  return false;
}


// Observes a stream on behalf of its upstream's metrics: the time to the first text, and
// the usage the last chunk reports.
class MeteredStream final : public ChatStream {
 public:
  MeteredStream(std::unique_ptr<ChatStream> inner, const LlmMetrics::Upstream& metrics,
                std::chrono::steady_clock::time_point started)
      : inner_(std::move(inner)), metrics_(metrics), started_(started) {}

  Task<Expected<std::optional<ChatChunk>>> Next() override {
    auto chunk = co_await inner_->Next();
    if (chunk && *chunk) {
      const ChatChunk& piece = **chunk;
      if (!first_seen_ && (!piece.delta.empty() || !piece.finish_reason.empty())) {
        first_seen_ = true;
        metrics_.time_to_first_token->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
      }
      if (piece.usage) {
        metrics_.prompt_tokens->Inc(static_cast<std::uint64_t>(std::max<std::int64_t>(0, piece.usage->prompt_tokens)));
        metrics_.completion_tokens->Inc(
            static_cast<std::uint64_t>(std::max<std::int64_t>(0, piece.usage->completion_tokens)));
      }
    }
    co_return chunk;
  }
  void Cancel() override { inner_->Cancel(); }

 private:
  std::unique_ptr<ChatStream> inner_;
  const LlmMetrics::Upstream& metrics_;
  std::chrono::steady_clock::time_point started_;
  bool first_seen_ = false;
};

}  // namespace

LlmMetrics::LlmMetrics(metrics::Registry& registry)
    : requests_(registry.AddCounter("llm_upstream_calls_total", "Calls to LLM upstreams (each retry counts), by outcome.", {"provider", "outcome"})),
      retries_(registry.AddCounter("llm_upstream_retries_total", "Upstream calls that retried a failed one.", {"provider"})),
      breaker_opened_(registry.AddCounter("llm_circuit_breaker_opened_total",
                                          "Times an upstream's circuit breaker opened.", {"provider"})),
      time_to_first_token_(registry.AddHistogram("llm_upstream_time_to_first_token_seconds",
                                                 "From calling the upstream to its first text.", {"provider"})),
      tokens_(registry.AddCounter("llm_upstream_tokens_total", "Tokens as upstreams report them.", {"provider", "type"})) {}

LlmMetrics::Upstream LlmMetrics::For(std::string provider) {
  Upstream upstream{.family = this,
                    .provider = provider,
                    .ok = &requests_.WithLabels({provider, "ok"}),
                    .retries = &retries_.WithLabels({provider}),
                    .breaker_opened = &breaker_opened_.WithLabels({provider}),
                    .time_to_first_token = &time_to_first_token_.WithLabels({provider}),
                    .prompt_tokens = &tokens_.WithLabels({provider, "prompt"}),
                    .completion_tokens = &tokens_.WithLabels({provider, "completion"})};
  return upstream;
}

void LlmMetrics::Upstream::Failed(ErrorCode code) const {
  family->requests_.WithLabels({provider, ErrorCodeName(code)}).Inc();
}


bool Retryable(ErrorCode code) {
  return code == ErrorCode::kUpstreamUnavailable || code == ErrorCode::kUpstreamTimeout ||
         code == ErrorCode::kRateLimited;
}

Task<bool> ResilientProvider::PrepareRetry(int attempt, const CallLimits& limits, const Error& error) {
  if (attempt > limits.retries.value_or(retry_.retries) || !Retryable(error.code)) co_return false;
  if (error.retry_after > retry_.max_retry_after) {
    log::Warn("upstream asks to wait longer than LLM_RETRY_AFTER_MAX: not retrying",
              {{"provider", name()}, {"retry_after_ms", error.retry_after.count()}});
    co_return false;
  }
  const milliseconds wait = std::max(Backoff(retry_, attempt), error.retry_after);
  log::Warn("upstream call failed; retrying", {{"provider", name()},
                                               {"attempt", attempt},
                                               {"wait_ms", wait.count()},
                                               {"error", error.message}});
  asio::steady_timer timer(co_await asio::this_coro::executor, wait);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
  co_return true;
}

namespace {

// The retry loop of ResilientProvider, for chat and embeddings alike: `call` makes one
// attempt; the breaker sees every outcome.
template <typename T, typename Call, typename Prepare>
Task<Expected<T>> WithRetries(std::string_view name, CircuitBreaker& breaker, const LlmMetrics::Upstream* metrics,
                              Call& call, Prepare& prepare) {
  for (int attempt = 1;; ++attempt) {
    if (!breaker.Allow()) {
      co_return MakeError(ErrorCode::kUpstreamUnavailable,
                          fmt::format("{} is failing: not calling it for another {} ms (circuit breaker open)", name,
                                      breaker.RemainingCooldown().count()));
    }
    if (metrics && attempt > 1) metrics->retries->Inc();
    auto result = co_await call();
    if (result) {
      breaker.OnSuccess();
      if (metrics) metrics->ok->Inc();
      co_return result;
    }
    if (metrics) metrics->Failed(result.error().code);
    if (CountsAgainstUpstream(result.error().code)) {
      if (breaker.OnFailure()) {
        log::Warn("circuit breaker opened", {{"provider", name}, {"error", result.error().message}});
        if (metrics) metrics->breaker_opened->Inc();
      }
    } else {
      breaker.OnNeutral();
    }
    const bool again = co_await prepare(attempt, result.error());
    if (!again) co_return result;
  }
}

}  // namespace

Task<Expected<std::unique_ptr<ChatStream>>> ResilientProvider::StreamChat(const ChatRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  auto call = [&]() { return upstream_.StreamChat(request); };
  auto prepare = [this, &request](int attempt, const Error& error) { return PrepareRetry(attempt, request.limits, error); };
  const LlmMetrics::Upstream* metrics = metrics_ ? &*metrics_ : nullptr;
  auto stream = co_await WithRetries<std::unique_ptr<ChatStream>>(name(), breaker_, metrics, call, prepare);
  if (!stream || metrics == nullptr) co_return stream;
  co_return std::unique_ptr<ChatStream>(std::make_unique<MeteredStream>(std::move(*stream), *metrics, started));
}

Task<Expected<Embeddings>> ResilientProvider::Embed(const EmbeddingRequest& request) {
  auto call = [&]() { return upstream_.Embed(request); };
  auto prepare = [this, &request](int attempt, const Error& error) { return PrepareRetry(attempt, request.limits, error); };
  const LlmMetrics::Upstream* metrics = metrics_ ? &*metrics_ : nullptr;
  auto embedded = co_await WithRetries<Embeddings>(name(), breaker_, metrics, call, prepare);
  if (embedded && metrics) {
    metrics->prompt_tokens->Inc(static_cast<std::uint64_t>(std::max<std::int64_t>(0, embedded->usage.prompt_tokens)));
  }
  co_return embedded;
}

Task<Expected<std::unique_ptr<CompletionResponse>>> ResilientProvider::Complete(const CompletionRequest& request) {
  auto call = [&]() { return upstream_.Complete(request); };
  // A client that left needs no second attempt (nor a wait for one).
  auto prepare = [this, &request](int attempt, const Error& error) -> Task<bool> {
    if (request.cancel != nullptr && request.cancel->cancelled()) co_return false;
    const bool again = co_await PrepareRetry(attempt, request.limits, error);
    co_return again && !(request.cancel != nullptr && request.cancel->cancelled());
  };
  // Outcomes, retries and breaker openings are counted per upstream; the time to the first
  // token and the tokens of a pass-through are the gateway's to count (it reads the events).
  const LlmMetrics::Upstream* metrics = metrics_ ? &*metrics_ : nullptr;
  co_return co_await WithRetries<std::unique_ptr<CompletionResponse>>(name(), breaker_, metrics, call, prepare);
}

Task<Expected<std::unique_ptr<ChatStream>>> FallbackChain::StreamChat(const ChatRequest& request) {
  std::optional<Error> last;
  for (std::size_t i = 0; i < candidates_.size(); ++i) {
    const Candidate& candidate = candidates_[i];
    if (last) {
      log::Warn("falling back to another model",
                {{"from", candidates_[i - 1].model}, {"to", candidate.model}, {"error", last->message}});
    }
    ChatRequest attempt = request;
    attempt.model = candidate.upstream_model;
    attempt.limits = candidate.limits;
    auto stream = co_await candidate.provider->StreamChat(attempt);
    if (stream || !FallbackWorthy(stream.error())) co_return stream;
    last = std::move(stream).error();
  }
  co_return Unexpected{std::move(*last)};
}

Task<Expected<std::unique_ptr<CompletionResponse>>> FallbackChain::Complete(const CompletionRequest& request) {
  std::optional<Error> last;
  for (std::size_t i = 0; i < candidates_.size(); ++i) {
    const Candidate& candidate = candidates_[i];
    if (last) {
      if (request.cancel != nullptr && request.cancel->cancelled()) break;
      log::Warn("falling back to another model",
                {{"from", candidates_[i - 1].model}, {"to", candidate.model}, {"error", last->message}});
    }
    CompletionRequest attempt = request;  // the fields are shared, not copied
    attempt.model = candidate.upstream_model;
    attempt.limits = candidate.limits;
    auto response = co_await candidate.provider->Complete(attempt);
    if (response || !FallbackWorthy(response.error())) co_return response;
    last = std::move(response).error();
  }
  co_return Unexpected{std::move(*last)};
}

Task<Expected<Embeddings>> FallbackChain::Embed(const EmbeddingRequest& request) {
  std::optional<Error> last;
  for (const Candidate& candidate : candidates_) {
    EmbeddingRequest attempt = request;
    attempt.model = candidate.upstream_model;
    attempt.limits = candidate.limits;
    auto result = co_await candidate.provider->Embed(attempt);
    if (result || !FallbackWorthy(result.error())) co_return result;
    last = std::move(result).error();
  }
  co_return Unexpected{std::move(*last)};
}

std::vector<DeploymentConfig> ModelConfig::Deployments() const {
  if (!deployments.empty()) return deployments;
  return {DeploymentConfig{.provider = provider, .upstream_model = upstream_model, .weight = 1}};
}

Router::Router(RouterConfig config, http::Client& client, metrics::Registry* metrics)
    : models_(std::move(config.models)) {
  if (metrics != nullptr) metrics_.emplace(*metrics);
  upstreams_.reserve(config.upstreams.size());
  for (UpstreamConfig& upstream : config.upstreams) {
    Upstream built{.config = std::move(upstream), .api = nullptr, .resilient = nullptr};
    built.api = std::make_unique<OpenAiProvider>(built.config.api, client);
    std::optional<LlmMetrics::Upstream> counted;
    if (metrics_) counted = metrics_->For(built.config.api.name);
    built.resilient =
        std::make_unique<ResilientProvider>(*built.api, built.config.retry, built.config.breaker, std::move(counted));
    upstreams_.push_back(std::move(built));
  }
}

Router::Upstream* Router::Find(std::string_view name) {
  for (Upstream& upstream : upstreams_) {
    if (upstream.config.api.name == name) return &upstream;
  }
  return nullptr;
}

Task<void> Router::Discover(std::string assumed) {
  // A listed id a configured model already uses, as its name or an alias, is not added.
  const auto configured = [&](std::string_view name) {
    return std::any_of(models_.begin(), models_.end(), [&](const ModelConfig& m) {
      return m.name == name || std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end();
    });
  };
  for (Upstream& upstream : upstreams_) {
    if (!upstream.config.discover_models) continue;
    const std::string& provider = upstream.config.api.name;
    auto listed = co_await upstream.api->ListModels();
    if (!listed) {
      log::Error("cannot list the upstream's models: only models named in the configuration are offered",
                 {{"provider", provider}, {"base_url", upstream.config.api.base_url}, {"error", listed.error().message}});
      if (!assumed.empty() && !configured(assumed)) {
        log::Warn("assuming the default model is served by this upstream", {{"provider", provider}, {"model", assumed}});
        models_.push_back(ModelConfig{.name = assumed, .provider = provider, .upstream_model = assumed});
      }
      continue;
    }
    std::string added;
    std::size_t count = 0;
    for (const std::string& id : *listed) {
      if (OffTopicModel(id)) continue;
      if (configured(id)) continue;
      models_.push_back(ModelConfig{.name = id,
                                    .provider = provider,
                                    .upstream_model = id,
                                    .embeddings = id.find("embed") != std::string::npos});
      if (!added.empty()) added += ',';
      added += id;
      ++count;
    }
    log::Info("models discovered", {{"provider", provider},
                                    {"base_url", upstream.config.api.base_url},
                                    {"count", count},
                                    {"models", added}});
  }
}

Expected<FallbackChain::Candidate> Router::OwnCandidate(const ModelConfig& model) {
  std::vector<BalancedProvider::Deployment> deployments;
  for (const DeploymentConfig& deployment : model.Deployments()) {
    Upstream* upstream = Find(deployment.provider);
    if (upstream == nullptr) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("model '{}' names provider '{}', which is not configured", model.name, deployment.provider));
    }
    deployments.push_back({.provider = upstream->resilient.get(),
                           .upstream_model = deployment.upstream_model.empty() ? model.name : deployment.upstream_model,
                           .weight = deployment.weight,
                           .breaker = &upstream->resilient->breaker()});
  }
  if (deployments.size() == 1) {
    return FallbackChain::Candidate{deployments.front().provider, deployments.front().upstream_model, model.name,
                                    model.limits};
  }
  balancers_.push_back(std::make_unique<BalancedProvider>(model.name, std::move(deployments), model.balance));
  return FallbackChain::Candidate{balancers_.back().get(), model.name, model.name, model.limits};
}

Expected<void> Router::Register(ModelRegistry& registry) {
  // Each model's own candidate, built once: a balancer's counts must be the same whether
  // the model is called directly or as another's fallback.
  std::map<std::string, FallbackChain::Candidate, std::less<>> own;
  for (const ModelConfig& model : models_) {
    auto candidate = OwnCandidate(model);
    if (!candidate) return Unexpected{std::move(candidate).error()};
    own.emplace(model.name, std::move(*candidate));
  }
  std::vector<std::pair<const ModelConfig*, std::vector<FallbackChain::Candidate>>> planned;
  for (const ModelConfig& model : models_) {
    std::vector<FallbackChain::Candidate> candidates{own.at(model.name)};
    for (const std::string& fallback : model.fallbacks) {
      if (const auto configured = own.find(fallback); configured != own.end()) {
        candidates.push_back(configured->second);
      } else if (auto existing = registry.Resolve(fallback)) {
        candidates.push_back({&existing->provider, existing->info.upstream_model, existing->info.id});
      } else {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("model '{}' falls back to '{}', which is not a known model", model.name, fallback));
      }
    }
    planned.emplace_back(&model, std::move(candidates));
  }
  for (auto& [model, candidates] : planned) {
    const FallbackChain::Candidate& first = candidates.front();
    const std::string provider(first.provider->name());
    ModelInfo info{.id = model->name,
                   .provider = provider,
                   .upstream_model = first.upstream_model,
                   .context_window = model->context_window,
                   .embeddings = model->embeddings,
                   .owned_by = provider,
                   .input_price_per_million = model->input_price_per_million,
                   .output_price_per_million = model->output_price_per_million};
    chains_.push_back(std::make_unique<FallbackChain>(std::move(candidates)));
    if (auto added = registry.Add(*chains_.back(), std::move(info)); !added) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("model '{}': {}", model->name, added.error().message));
    }
  }
  for (const ModelConfig& model : models_) {
    for (const std::string& alias : model.aliases) {
      if (auto added = registry.AddAlias(alias, model.name); !added) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("model '{}': aliases: {}", model.name, added.error().message));
      }
    }
  }
  return {};
}

}  // namespace chatd::llm
