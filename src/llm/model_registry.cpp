#include "llm/model_registry.hpp"

#include <utility>

namespace chatd::llm {

Expected<void> ModelRegistry::Add(Provider& provider, ModelInfo info) {
  if (info.id.empty()) return MakeError(ErrorCode::kInvalidArgument, "a model needs an id");
  if (info.provider != provider.name()) {
    return MakeError(ErrorCode::kInvalidArgument, "model '" + info.id + "' names provider '" + info.provider +
                                                      "' but is served by '" + std::string(provider.name()) + "'");
  }
  if (models_.contains(info.id) || aliases_.contains(info.id)) {
    return MakeError(ErrorCode::kConflict, "model '" + info.id + "' is already registered");
  }
  std::string id = info.id;
  models_.emplace(std::move(id), Entry{&provider, std::move(info)});
  return {};
}

Expected<void> ModelRegistry::AddAlias(std::string alias, std::string_view target) {
  if (!models_.contains(target)) {
    return MakeError(ErrorCode::kNotFound, "alias '" + alias + "': model '" + std::string(target) + "' does not exist");
  }
  if (alias.empty() || models_.contains(alias) || aliases_.contains(alias)) {
    return MakeError(ErrorCode::kConflict, "model name '" + alias + "' is already registered");
  }
  aliases_.emplace(std::move(alias), std::string(target));
  return {};
}

Expected<ResolvedModel> ModelRegistry::Resolve(std::string_view name) const {
  const std::string_view wanted = name.empty() ? std::string_view(default_model_) : name;
  std::string_view id = wanted;
  if (const auto alias = aliases_.find(wanted); alias != aliases_.end()) id = alias->second;
  const auto model = models_.find(id);
  if (model == models_.end()) {
    return MakeError(ErrorCode::kNotFound, "model '" + std::string(wanted) + "' does not exist", "model");
  }
  return ResolvedModel{*model->second.provider, model->second.info};
}

std::vector<ModelInfo> ModelRegistry::List() const {
  std::vector<ModelInfo> list;
  list.reserve(models_.size());
  for (const auto& [id, entry] : models_) list.push_back(entry.info);
  return list;
}

}  // namespace chatd::llm
