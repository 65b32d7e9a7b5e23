#include "llm/router.hpp"

#include <algorithm>
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

// Worth trying the next candidate: anything but a request that is invalid everywhere or a
// cancel by our own side.
bool FallbackWorthy(const Error& error) {
  return error.code != ErrorCode::kInvalidArgument && !(error.code == ErrorCode::kUnavailable && error.message == "cancelled");
}

// Model ids a /models listing offers that are not for chat or embeddings.
bool OffTopicModel(std::string_view id) {
  for (std::string_view marker : {"whisper", "tts", "dall-e", "moderation", "audio", "realtime", "transcribe", "image",
                                  "davinci", "babbage", "sora"}) {
    if (id.find(marker) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

bool Retryable(ErrorCode code) {
  return code == ErrorCode::kUpstreamUnavailable || code == ErrorCode::kUpstreamTimeout ||
         code == ErrorCode::kRateLimited;
}

Task<bool> ResilientProvider::PrepareRetry(int attempt, const Error& error) {
  if (attempt > retry_.retries || !Retryable(error.code)) co_return false;
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
Task<Expected<T>> WithRetries(std::string_view name, CircuitBreaker& breaker, Call& call, Prepare& prepare) {
  for (int attempt = 1;; ++attempt) {
    if (!breaker.Allow()) {
      co_return MakeError(ErrorCode::kUpstreamUnavailable,
                          fmt::format("{} is failing: not calling it for another {} ms (circuit breaker open)", name,
                                      breaker.RemainingCooldown().count()));
    }
    auto result = co_await call();
    if (result) {
      breaker.OnSuccess();
      co_return result;
    }
    if (CountsAgainstUpstream(result.error().code)) {
      if (breaker.OnFailure()) log::Warn("circuit breaker opened", {{"provider", name}, {"error", result.error().message}});
    } else {
      breaker.OnNeutral();
    }
    const bool again = co_await prepare(attempt, result.error());
    if (!again) co_return result;
  }
}

}  // namespace

Task<Expected<std::unique_ptr<ChatStream>>> ResilientProvider::StreamChat(const ChatRequest& request) {
  auto call = [&]() { return upstream_.StreamChat(request); };
  auto prepare = [this](int attempt, const Error& error) { return PrepareRetry(attempt, error); };
  co_return co_await WithRetries<std::unique_ptr<ChatStream>>(name(), breaker_, call, prepare);
}

Task<Expected<Embeddings>> ResilientProvider::Embed(const EmbeddingRequest& request) {
  auto call = [&]() { return upstream_.Embed(request); };
  auto prepare = [this](int attempt, const Error& error) { return PrepareRetry(attempt, error); };
  co_return co_await WithRetries<Embeddings>(name(), breaker_, call, prepare);
}

Task<Expected<std::unique_ptr<CompletionResponse>>> ResilientProvider::Complete(const CompletionRequest& request) {
  auto call = [&]() { return upstream_.Complete(request); };
  // A client that left needs no second attempt (nor a wait for one).
  auto prepare = [this, &request](int attempt, const Error& error) -> Task<bool> {
    if (request.cancel != nullptr && request.cancel->cancelled()) co_return false;
    const bool again = co_await PrepareRetry(attempt, error);
    co_return again && !(request.cancel != nullptr && request.cancel->cancelled());
  };
  co_return co_await WithRetries<std::unique_ptr<CompletionResponse>>(name(), breaker_, call, prepare);
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
    auto result = co_await candidate.provider->Embed(attempt);
    if (result || !FallbackWorthy(result.error())) co_return result;
    last = std::move(result).error();
  }
  co_return Unexpected{std::move(*last)};
}

Router::Router(RouterConfig config, http::Client& client) : models_(std::move(config.models)) {
  upstreams_.reserve(config.upstreams.size());
  for (UpstreamConfig& upstream : config.upstreams) {
    Upstream built{.config = std::move(upstream), .api = nullptr, .resilient = nullptr};
    built.api = std::make_unique<OpenAiProvider>(built.config.api, client);
    built.resilient = std::make_unique<ResilientProvider>(*built.api, built.config.retry, built.config.breaker);
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
  const auto configured = [&](std::string_view name) {
    return std::any_of(models_.begin(), models_.end(), [&](const ModelConfig& m) { return m.name == name; });
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

Expected<void> Router::Register(ModelRegistry& registry) {
  // Each model's own deployment: its upstream (with retries and breaker) and upstream name.
  auto deployment = [&](const ModelConfig& model) -> Expected<FallbackChain::Candidate> {
    Upstream* upstream = Find(model.provider);
    if (upstream == nullptr) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("model '{}' names provider '{}', which is not configured", model.name, model.provider));
    }
    return FallbackChain::Candidate{upstream->resilient.get(),
                                    model.upstream_model.empty() ? model.name : model.upstream_model, model.name};
  };
  std::vector<std::pair<const ModelConfig*, std::vector<FallbackChain::Candidate>>> planned;
  for (const ModelConfig& model : models_) {
    auto own = deployment(model);
    if (!own) return Unexpected{std::move(own).error()};
    std::vector<FallbackChain::Candidate> candidates{*own};
    for (const std::string& fallback : model.fallbacks) {
      const auto configured = std::find_if(models_.begin(), models_.end(), [&](const ModelConfig& m) { return m.name == fallback; });
      if (configured != models_.end()) {
        auto candidate = deployment(*configured);
        if (!candidate) return Unexpected{std::move(candidate).error()};
        candidates.push_back(*candidate);
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
    chains_.push_back(std::make_unique<FallbackChain>(std::move(candidates)));
    ModelInfo info{.id = model->name,
                   .provider = model->provider,
                   .upstream_model = model->upstream_model.empty() ? model->name : model->upstream_model,
                   .context_window = model->context_window,
                   .embeddings = model->embeddings,
                   .owned_by = model->provider,
                   .input_price_per_million = model->input_price_per_million,
                   .output_price_per_million = model->output_price_per_million};
    if (auto added = registry.Add(*chains_.back(), std::move(info)); !added) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("model '{}': {}", model->name, added.error().message));
    }
  }
  return {};
}

}  // namespace chatd::llm
