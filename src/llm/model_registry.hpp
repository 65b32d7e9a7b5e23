// Public model names -> the provider that serves them. Built once by the composition root
// (app), then only read: concurrent Resolve/List calls from every I/O thread need no lock.
//
// Configured models are registered by llm::Router with a FallbackChain as their provider
// (llm/router.hpp), so Resolve stays one lookup while fallbacks, retries and circuit
// breakers happen behind the returned Provider.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"
#include "llm/provider.hpp"

namespace chatd::llm {

/// The default model when neither the request nor the conversation names one (LLM_MODEL).
inline constexpr std::string_view kDefaultModel = "demo";

struct ResolvedModel {
  Provider& provider;
  const ModelInfo& info;  // info.id is the canonical name, also when resolved via an alias
};

class ModelRegistry {
 public:
  explicit ModelRegistry(std::string default_model = std::string(kDefaultModel))
      : default_model_(std::move(default_model)) {}
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  /// Registers a model served by `provider` (which must outlive the registry).
  /// kConflict when the id is taken (by a model or an alias); kInvalidArgument when
  /// the id is empty or info.provider is not provider.name().
  Expected<void> Add(Provider& provider, ModelInfo info);
  /// `alias` resolves to the model `target` (a model id, not another alias).
  /// kNotFound when the target is unknown; kConflict when the alias is taken.
  Expected<void> AddAlias(std::string alias, std::string_view target);

  /// The model for a public name or alias; the empty name means the default model.
  /// kNotFound "model 'x' does not exist" (param "model") otherwise. The references
  /// stay valid as long as the registry.
  Expected<ResolvedModel> Resolve(std::string_view name) const;
  /// Every model (not the aliases), sorted by id.
  std::vector<ModelInfo> List() const;

  const std::string& default_model() const { return default_model_; }

 private:
  struct Entry {
    Provider* provider;
    ModelInfo info;
  };

  std::string default_model_;
  std::map<std::string, Entry, std::less<>> models_;
  std::map<std::string, std::string, std::less<>> aliases_;  // alias -> model id
};

}  // namespace chatd::llm
