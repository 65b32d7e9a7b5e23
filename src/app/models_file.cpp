#include "app/models_file.hpp"

#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "http/client.hpp"

namespace chatd::app {
namespace {

using std::chrono::milliseconds;

// Reads the optional fields of one table, remembering the first problem.
class Fields {
 public:
  Fields(const toml::table& table, std::string where) : table_(table), where_(std::move(where)) {}

  std::string String(std::string_view key, std::string fallback = {}) {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return fallback;
    if (const auto value = node->value<std::string>()) return *value;
    Fail(key, "must be a string");
    return fallback;
  }
  std::int64_t Integer(std::string_view key, std::int64_t fallback, std::int64_t min, std::int64_t max) {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return fallback;
    const auto value = node->value<std::int64_t>();
    if (!value || !node->is_integer() || *value < min || *value > max) {
      Fail(key, fmt::format("must be a whole number from {} to {}", min, max));
      return fallback;
    }
    return *value;
  }
  double Number(std::string_view key, double fallback) {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return fallback;
    const auto value = node->value<double>();
    if (!value || *value < 0) {
      Fail(key, "must be a number of at least 0");
      return fallback;
    }
    return *value;
  }
  bool Bool(std::string_view key, bool fallback) {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return fallback;
    if (const auto value = node->value<bool>()) return *value;
    Fail(key, "must be true or false");
    return fallback;
  }
  // "250ms", "10s", "5m" or a number of seconds.
  std::optional<milliseconds> Duration(std::string_view key) {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return std::nullopt;
    std::optional<milliseconds> parsed;
    if (const auto seconds = node->value<std::int64_t>(); seconds && node->is_integer()) {
      parsed = std::chrono::seconds(*seconds);
    } else if (const auto text = node->value<std::string>()) {
      parsed = ParseDuration(*text);
    }
    if (!parsed || parsed->count() <= 0) {
      Fail(key, "must be a duration above 0 such as \"500ms\", \"10s\" or \"2m\"");
      return std::nullopt;
    }
    return parsed;
  }
  std::vector<std::string> Strings(std::string_view key) {
    std::vector<std::string> out;
    const toml::node* node = table_.get(key);
    if (node == nullptr) return out;
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      Fail(key, "must be an array of strings");
      return out;
    }
    for (const toml::node& item : *array) {
      const auto value = item.value<std::string>();
      if (!value) {
        Fail(key, "must be an array of strings");
        return {};
      }
      out.push_back(*value);
    }
    return out;
  }
  void Fail(std::string_view key, std::string_view problem) {
    if (!error_) error_ = fmt::format("{}: {} {}", where_, key, problem);
  }
  const std::optional<std::string>& error() const { return error_; }

 private:
  const toml::table& table_;
  std::string where_;
  std::optional<std::string> error_;
};

Unexpected Invalid(const std::string& path, std::string_view problem) {
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("MODELS_FILE {}: {}", path, problem));
}

// A model's `deployments = [{ provider = "a", upstream_model = "x", weight = 3 }, ...]`
// and `balance`, into `model`; the problem, naming the model and the field, otherwise.
std::optional<std::string> ReadDeployments(const toml::table& table, llm::ModelConfig& model) {
  const std::string where = fmt::format("model '{}'", model.name);
  const toml::node* node = table.get("deployments");
  if (node == nullptr) {
    if (model.provider.empty()) return where + ": provider (or deployments) is required";
    if (table.contains("balance")) return where + ": balance needs deployments";
    return std::nullopt;
  }
  if (!model.provider.empty() || !model.upstream_model.empty()) {
    return where + ": set provider and upstream_model, or deployments, not both";
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) return where + ": deployments must be an array of tables ({ provider = \"...\", ... })";
  if (array->empty()) return where + ": deployments is empty; name at least one";
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::table* entry = (*array)[i].as_table();
    const std::string at = fmt::format("{}: deployments[{}]", where, i);
    if (entry == nullptr) return at + " must be a table ({ provider = \"...\", ... })";
    Fields read(*entry, at);
    llm::DeploymentConfig deployment;
    deployment.provider = read.String("provider");
    deployment.upstream_model = read.String("upstream_model");
    deployment.weight = static_cast<int>(read.Integer("weight", 1, 1, 1000));
    if (read.error()) return *read.error();
    if (deployment.provider.empty()) return at + ": provider is required";
    model.deployments.push_back(std::move(deployment));
  }
  Fields read(table, where);
  const std::string balance = read.String("balance", "weighted");
  if (read.error()) return *read.error();
  if (balance == "weighted") {
    model.balance = llm::BalancePolicy::kWeighted;
  } else if (balance == "least_busy") {
    model.balance = llm::BalancePolicy::kLeastBusy;
  } else {
    return fmt::format("{}: balance '{}' is not known; expected \"weighted\" or \"least_busy\"", where, balance);
  }
  return std::nullopt;
}

// Every alias must be a name no model and no other alias has.
std::optional<std::string> CheckAliases(const std::vector<llm::ModelConfig>& models) {
  std::map<std::string_view, std::string_view> taken;  // public name -> the model it is
  for (const llm::ModelConfig& model : models) taken.emplace(model.name, model.name);
  for (const llm::ModelConfig& model : models) {
    for (const std::string& alias : model.aliases) {
      if (alias.empty()) return fmt::format("model '{}': aliases: an alias is empty", model.name);
      const auto [clash, added] = taken.emplace(alias, model.name);
      if (added) continue;
      if (clash->first == clash->second) {
        return fmt::format("model '{}': alias '{}' is the name of a model", model.name, alias);
      }
      return fmt::format("model '{}': alias '{}' is already an alias of model '{}'", model.name, alias, clash->second);
    }
  }
  return std::nullopt;
}

}  // namespace

Expected<ModelsFile> LoadModelsFile(const std::string& path, const llm::UpstreamConfig& defaults, const EnvSource& env) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    const auto& where = error.source().begin;
    return Invalid(path, fmt::format("line {}, column {}: {}", where.line, where.column, error.description()));
  }

  ModelsFile file;
  Fields top(root, "the top level");
  file.default_model = top.String("default_model");
  if (top.error()) return Invalid(path, *top.error());

  std::set<std::string, std::less<>> names;
  if (const toml::node* providers = root.get("providers")) {
    const toml::array* array = providers->as_array();
    if (array == nullptr) return Invalid(path, "providers must be an array of tables ([[providers]])");
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::table* table = (*array)[i].as_table();
      if (table == nullptr) return Invalid(path, "providers must be an array of tables ([[providers]])");
      Fields read(*table, fmt::format("providers[{}]", i));
      llm::UpstreamConfig upstream = defaults;
      upstream.api.name = read.String("name");
      const std::string type = read.String("type", "openai-compatible");
      upstream.api.base_url = read.String("base_url");
      upstream.api.api_key = read.String("api_key");
      const std::string key_env = read.String("api_key_env");
      upstream.api.connect_timeout = read.Duration("connect_timeout");
      upstream.api.first_byte_timeout = read.Duration("first_byte_timeout");
      upstream.api.idle_timeout = read.Duration("idle_timeout");
      upstream.retry.retries = static_cast<int>(read.Integer("retries", defaults.retry.retries, 0, 10));
      upstream.breaker.failures =
          static_cast<int>(read.Integer("circuit_breaker_failures", defaults.breaker.failures, 0, 1000));
      if (auto cooldown = read.Duration("circuit_breaker_cooldown")) upstream.breaker.cooldown = *cooldown;
      upstream.discover_models = read.Bool("discover_models", false);
      if (read.error()) return Invalid(path, *read.error());

      const std::string where = upstream.api.name.empty() ? fmt::format("providers[{}]", i)
                                                          : fmt::format("provider '{}'", upstream.api.name);
      if (upstream.api.name.empty()) return Invalid(path, where + ": name is required");
      if (!names.insert(upstream.api.name).second) return Invalid(path, where + ": the name is used twice");
      if (type != "openai-compatible") {
        return Invalid(path, fmt::format("{}: type '{}' is not supported; expected openai-compatible", where, type));
      }
      if (auto url = http::ParseUrl(upstream.api.base_url); !url) {
        return Invalid(path, fmt::format("{}: base_url: {}", where, url.error().message));
      }
      if (!key_env.empty()) {
        if (!upstream.api.api_key.empty()) return Invalid(path, where + ": set api_key or api_key_env, not both");
        auto key = env.Get(key_env);
        if (!key || key->empty()) return Invalid(path, fmt::format("{}: api_key_env names {}, which is not set", where, key_env));
        upstream.api.api_key = *key;
      }
      file.router.upstreams.push_back(std::move(upstream));
    }
  }

  std::set<std::string, std::less<>> models;
  if (const toml::node* node = root.get("models")) {
    const toml::array* array = node->as_array();
    if (array == nullptr) return Invalid(path, "models must be an array of tables ([[models]])");
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::table* table = (*array)[i].as_table();
      if (table == nullptr) return Invalid(path, "models must be an array of tables ([[models]])");
      Fields named(*table, fmt::format("models[{}]", i));
      llm::ModelConfig model;
      model.name = named.String("name");
      if (named.error()) return Invalid(path, *named.error());
      if (model.name.empty()) return Invalid(path, fmt::format("models[{}]: name is required", i));
      Fields read(*table, fmt::format("model '{}'", model.name));
      model.provider = read.String("provider");
      model.upstream_model = read.String("upstream_model");
      model.context_window = read.Integer("context_window", 8192, 256, 100'000'000);
      model.input_price_per_million = read.Number("input_price_per_1m", 0);
      model.output_price_per_million = read.Number("output_price_per_1m", 0);
      model.fallbacks = read.Strings("fallbacks");
      model.embeddings = read.Bool("embeddings", false);
      model.aliases = read.Strings("aliases");
      model.limits.first_byte_timeout = read.Duration("first_byte_timeout");
      model.limits.idle_timeout = read.Duration("idle_timeout");
      if (table->contains("retries")) model.limits.retries = static_cast<int>(read.Integer("retries", 0, 0, 10));
      if (read.error()) return Invalid(path, *read.error());
      if (!models.insert(model.name).second) return Invalid(path, fmt::format("model '{}' is defined twice", model.name));
      if (auto problem = ReadDeployments(*table, model)) return Invalid(path, *problem);
      file.router.models.push_back(std::move(model));
    }
  }
  if (auto problem = CheckAliases(file.router.models)) return Invalid(path, *problem);
  return file;
}

}  // namespace chatd::app
