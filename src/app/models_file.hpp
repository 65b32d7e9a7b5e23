// The providers/models file (MODELS_FILE, TOML): upstreams beyond the OPENAI_* / DEEPSEEK_*
// variables, and models with their context windows, prices, fallbacks, aliases and
// deployments (several upstreams for one model, balanced). See
// deploy/models.example.toml for the format.
#pragma once

#include <string>

#include "core/config_env.hpp"
#include "core/expected.hpp"
#include "llm/router.hpp"

namespace chatd::app {

struct ModelsFile {
  llm::RouterConfig router;
  std::string default_model;  // `default_model`; empty when the file does not say
};

/// Reads and validates `path`. `defaults` gives each provider's retry policy and breaker
/// unless the file sets its own; API keys named by `api_key_env` come from `env`.
/// kInvalidArgument with the file, the entry and what is wrong.
Expected<ModelsFile> LoadModelsFile(const std::string& path, const llm::UpstreamConfig& defaults, const EnvSource& env);

}  // namespace chatd::app
