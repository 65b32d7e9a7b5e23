#include "llm/balanced_provider.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>

#include "core/log.hpp"

namespace chatd::llm {
namespace {

// One call in flight on a deployment, counted until destroyed. It adopts a count already
// taken: Plan takes the chosen deployment's under its lock, Hold the others'.
struct Release {
  void operator()(std::atomic<int>* count) const { count->fetch_sub(1, std::memory_order_relaxed); }
};
using Lease = std::unique_ptr<std::atomic<int>, Release>;

Lease Hold(std::atomic<int>& count) {
  count.fetch_add(1, std::memory_order_relaxed);
  return Lease(&count);
}

// A stream that keeps its deployment's call in flight until it is destroyed.
class HeldStream final : public ChatStream {
 public:
  HeldStream(std::unique_ptr<ChatStream> inner, Lease held) : held_(std::move(held)), inner_(std::move(inner)) {}
  Task<Expected<std::optional<ChatChunk>>> Next() override { return inner_->Next(); }
  void Cancel() override { inner_->Cancel(); }

 private:
  Lease held_;  // declared first: released after the stream is gone
  std::unique_ptr<ChatStream> inner_;
};

// The same for a pass-through response.
class HeldResponse final : public CompletionResponse {
 public:
  HeldResponse(std::unique_ptr<CompletionResponse> inner, Lease held)
      : held_(std::move(held)), inner_(std::move(inner)) {}
  std::string_view content_type() const override { return inner_->content_type(); }
  Task<Expected<std::optional<std::string>>> Read(TimePoint not_after) override { return inner_->Read(not_after); }
  std::chrono::milliseconds first_byte_timeout() const override { return inner_->first_byte_timeout(); }
  std::chrono::milliseconds idle_timeout() const override { return inner_->idle_timeout(); }
  void Cancel() override { inner_->Cancel(); }

 private:
  Lease held_;
  std::unique_ptr<CompletionResponse> inner_;
};

std::string JoinProviderNames(const std::vector<BalancedProvider::Deployment>& deployments) {
  std::string joined;
  std::vector<std::string_view> seen;
  for (const auto& deployment : deployments) {
    const std::string_view name = deployment.provider->name();
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
    seen.push_back(name);
    if (!joined.empty()) joined += '+';
    joined += name;
  }
  return joined;
}

}  // namespace

BalancedProvider::BalancedProvider(std::string model, std::vector<Deployment> deployments, BalancePolicy policy)
    : model_(std::move(model)),
      deployments_(std::move(deployments)),
      policy_(policy),
      in_flight_(deployments_.size()),
      current_weight_(deployments_.size(), 0) {
  if (deployments_.empty()) throw std::invalid_argument("model '" + model_ + "' has no deployment");
  for (const Deployment& deployment : deployments_) {
    if (deployment.provider == nullptr || deployment.weight < 1) {
      throw std::invalid_argument("model '" + model_ + "': a deployment needs a provider and a weight of at least 1");
    }
  }
  name_ = JoinProviderNames(deployments_);
}

std::vector<int> BalancedProvider::InFlight() const {
  std::vector<int> counts;
  counts.reserve(in_flight_.size());
  for (const auto& count : in_flight_) counts.push_back(count.load(std::memory_order_relaxed));
  return counts;
}

std::vector<std::size_t> BalancedProvider::Plan() {
  const std::size_t n = deployments_.size();
  // The breakers first, outside our lock (each takes its own).
  std::vector<bool> available(n);
  bool any = false;
  for (std::size_t i = 0; i < n; ++i) {
    available[i] = deployments_[i].breaker == nullptr || !deployments_[i].breaker->Refusing();
    any = any || available[i];
  }
  if (!any) available.assign(n, true);  // each refuses at once, with its breaker's message

  std::vector<bool> eligible = available;
  std::size_t chosen = n;
  {
    std::lock_guard lock(mutex_);
    if (policy_ == BalancePolicy::kLeastBusy) {
      int fewest = std::numeric_limits<int>::max();
      for (std::size_t i = 0; i < n; ++i) {
        if (eligible[i]) fewest = std::min(fewest, in_flight_[i].load(std::memory_order_relaxed));
      }
      for (std::size_t i = 0; i < n; ++i) {
        eligible[i] = eligible[i] && in_flight_[i].load(std::memory_order_relaxed) == fewest;
      }
    }
    // Smooth weighted round-robin (nginx's ngx_http_upstream_get_peer): every eligible
    // deployment gains its weight, the heaviest is chosen and loses the sum.
    std::int64_t total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!eligible[i]) continue;
      current_weight_[i] += deployments_[i].weight;
      total += deployments_[i].weight;
      if (chosen == n || current_weight_[i] > current_weight_[chosen]) chosen = i;
    }
    current_weight_[chosen] -= total;
    in_flight_[chosen].fetch_add(1, std::memory_order_relaxed);
  }

  std::vector<std::size_t> order{chosen};
  for (std::size_t k = 1; k < n; ++k) {
    const std::size_t next = (chosen + k) % n;
    if (available[next]) order.push_back(next);
  }
  return order;
}

template <typename T, typename Attempt>
Task<Expected<T>> BalancedProvider::Spread(Attempt& attempt, const CancelSignal* cancel) {
  const std::vector<std::size_t> order = Plan();
  std::optional<Error> last;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Deployment& deployment = deployments_[order[i]];
    Lease held = i == 0 ? Lease(&in_flight_[order[i]]) : Hold(in_flight_[order[i]]);
    if (last) {
      log::Warn("deployment failed: trying the model's next one",
                {{"model", model_},
                 {"from", deployments_[order[i - 1]].provider->name()},
                 {"to", deployment.provider->name()},
                 {"error", last->message}});
    }
    auto result = co_await attempt(deployment, held);
    if (result || !FallbackWorthy(result.error())) co_return result;
    last = std::move(result).error();
    if (cancel != nullptr && cancel->cancelled()) break;
  }
  co_return Unexpected{std::move(*last)};
}

Task<Expected<std::unique_ptr<ChatStream>>> BalancedProvider::StreamChat(const ChatRequest& request) {
  auto attempt = [&request](const Deployment& deployment, Lease& held) -> Task<Expected<std::unique_ptr<ChatStream>>> {
    ChatRequest routed = request;
    routed.model = deployment.upstream_model;
    auto stream = co_await deployment.provider->StreamChat(routed);
    if (!stream) co_return stream;
    co_return std::unique_ptr<ChatStream>(std::make_unique<HeldStream>(std::move(*stream), std::move(held)));
  };
  co_return co_await Spread<std::unique_ptr<ChatStream>>(attempt, nullptr);
}

Task<Expected<std::unique_ptr<CompletionResponse>>> BalancedProvider::Complete(const CompletionRequest& request) {
  auto attempt = [&request](const Deployment& deployment,
                            Lease& held) -> Task<Expected<std::unique_ptr<CompletionResponse>>> {
    CompletionRequest routed = request;  // the fields are shared, not copied
    routed.model = deployment.upstream_model;
    auto response = co_await deployment.provider->Complete(routed);
    if (!response) co_return response;
    co_return std::unique_ptr<CompletionResponse>(
        std::make_unique<HeldResponse>(std::move(*response), std::move(held)));
  };
  co_return co_await Spread<std::unique_ptr<CompletionResponse>>(attempt, request.cancel);
}

Task<Expected<Embeddings>> BalancedProvider::Embed(const EmbeddingRequest& request) {
  // The call is in flight while it runs: `held` is released when Spread moves on.
  auto attempt = [&request](const Deployment& deployment, Lease&) -> Task<Expected<Embeddings>> {
    EmbeddingRequest routed = request;
    routed.model = deployment.upstream_model;
    co_return co_await deployment.provider->Embed(routed);
  };
  co_return co_await Spread<Embeddings>(attempt, nullptr);
}

}  // namespace chatd::llm
