// The built-in `demo` provider: the embedded default when no real provider is configured
// (so a fresh install has a working chat with no API key) and the test double for
// everything above the provider interface. No network, no randomness: the reply is
// derived from the conversation, so the same prompt always streams the same text.
//
// Models:
//   demo            a reply of ~40-80 words, one word every `token_interval` (20 ms: ~50/s)
//   demo-slow       100 words, one every `slow_token_interval` (100 ms: 10/s)
//   demo-stall      `stall_after_tokens` words, then nothing: Next() waits until the
//                   request's idle_timeout and fails kUpstreamTimeout (or until Cancel())
//   demo-error      StreamChat fails before the first token with kUpstreamUnavailable
//   demo-embedding  deterministic, L2-normalised vectors (256 dimensions by default)
//
// A "token" is a word with its trailing space. Temperature and top_p are ignored.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>
#include <vector>

#include "llm/provider.hpp"

namespace chatd::llm {

struct DemoConfig {
  std::chrono::milliseconds token_interval{20};        // demo, demo-stall; 0 in tests
  std::chrono::milliseconds slow_token_interval{100};  // demo-slow
  int stall_after_tokens = 3;                          // demo-stall
};

class DemoProvider final : public Provider {
 public:
  static constexpr std::string_view kName = "demo";
  static constexpr int kDefaultDimensions = 256;
  static constexpr int kMaxDimensions = 4096;
  static constexpr std::size_t kMaxEmbeddingInputs = 2048;

  explicit DemoProvider(DemoConfig config = {}) : config_(config) {}

  /// The models above, for the registry (upstream_model == id).
  static std::vector<ModelInfo> Models();

  std::string_view name() const override { return kName; }
  /// Thread-safe (the provider holds only its config). Pacing uses a timer on the
  /// caller's executor; nothing sleeps.
  Task<Expected<std::unique_ptr<ChatStream>>> StreamChat(const ChatRequest& request) override;
  /// Completes without suspending. `dimensions` must be 1..4096 (default 256); at most
  /// 2048 inputs.
  Task<Expected<Embeddings>> Embed(const EmbeddingRequest& request) override;

 private:
  DemoConfig config_;
};

}  // namespace chatd::llm
