// One public model served by several deployments — the same model behind other keys,
// regions or vendors — with the calls spread over them. Each deployment is an upstream's
// ResilientProvider (its retries and circuit breaker) and the model name it knows:
//
//   FallbackChain ──> BalancedProvider ──> deployment "east" (ResilientProvider, "gpt-4o")
//   (the model, then   picks one per call,  deployment "west" (ResilientProvider, "gpt-4o-2024-08-06")
//    its fallbacks)    fails over to the rest before the first byte
//
// Policies. kWeighted is nginx's smooth weighted round-robin: deterministic, exact over
// each cycle of the weights' sum (3:1 gives east east west east, ...), and it spreads a
// deployment's turns instead of sending them in a burst. kLeastBusy takes the deployment
// with the fewest calls in flight — a call is in flight from its choice until its stream
// or response is destroyed — and breaks ties with the same round-robin, so it is the
// weighted policy while the deployments are equally busy.
//
// A deployment whose circuit breaker refuses calls is skipped while another can take
// them (when all refuse, each is asked anyway and answers at once). A failure before the
// first byte that FallbackChain would hand over on goes to the model's other deployments
// first, so a model's own deployments are used up before its fallbacks.
//
// Thread-safe: calls come from every I/O thread. The round-robin state is under one mutex
// held for a few additions per call, never across a co_await; in-flight counts are atomics
// (a stream may be destroyed on any thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llm/circuit_breaker.hpp"
#include "llm/provider.hpp"

namespace chatd::llm {

enum class BalancePolicy { kWeighted, kLeastBusy };

class BalancedProvider final : public Provider {
 public:
  struct Deployment {
    Provider* provider;  // the upstream's ResilientProvider; must outlive this
    std::string upstream_model;
    int weight = 1;  // at least 1: its share of the calls
    /// Asked before each choice: skipped while it refuses calls. Null: never skipped.
    const CircuitBreaker* breaker = nullptr;
  };

  /// `model` is the public name (for logs). At least one deployment, weights at least 1
  /// (the config loader checks; a violation throws std::invalid_argument).
  BalancedProvider(std::string model, std::vector<Deployment> deployments, BalancePolicy policy);
  BalancedProvider(const BalancedProvider&) = delete;
  BalancedProvider& operator=(const BalancedProvider&) = delete;

  /// The deployments' provider names, each once, joined by '+' ("east+west").
  std::string_view name() const override { return name_; }
  /// request.model is ignored: each deployment gets its own upstream model.
  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override;
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override;
  /// As StreamChat; no other deployment is tried once the request's CancelSignal fired.
  Task<Expected<std::unique_ptr<CompletionResponse>>> Complete(const CompletionRequest& request) override;

  /// Calls in flight on each deployment, in configuration order.
  std::vector<int> InFlight() const;

 private:
  // The deployments to try for one call, the chosen one first, then the other available
  // ones in configuration order after it. The chosen one is already counted in flight
  // (under the lock, so concurrent least-busy choices see each other).
  std::vector<std::size_t> Plan();
  // Runs `attempt` on the planned deployments until one succeeds or fails in a way another
  // deployment would not mend.
  template <typename T, typename Attempt>
  Task<Expected<T>> Spread(Attempt& attempt, const CancelSignal* cancel);

  std::string model_;
  std::string name_;
  std::vector<Deployment> deployments_;
  BalancePolicy policy_;
  std::vector<std::atomic<int>> in_flight_;  // per deployment
  std::mutex mutex_;
  std::vector<std::int64_t> current_weight_;  // per deployment, under mutex_
};

}  // namespace chatd::llm
