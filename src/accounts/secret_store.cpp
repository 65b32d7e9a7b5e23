#include "accounts/secret_store.hpp"

#include <fmt/format.h>

#include "core/time.hpp"

namespace chatd::accounts {

namespace {
// The name is bound into each ciphertext, so a value copied to another name won't open.
std::string AssociatedData(std::string_view name) { return fmt::format("secrets:{}", name); }
}  // namespace

Task<Expected<void>> SecretStore::Put(std::string_view name, std::string_view plaintext) {
  if (name.empty() || name.size() > 200) {
    co_return MakeError(ErrorCode::kInvalidArgument, "a secret's name has 1 to 200 characters", "name");
  }
  const std::string ciphertext = box_.Encrypt(plaintext, AssociatedData(name));
  co_return co_await repository_.Put(name, ciphertext, FormatRfc3339(clock_.Now()));
}

Task<Expected<std::optional<std::string>>> SecretStore::Get(std::string_view name) {
  auto record = co_await repository_.Get(name);
  if (!record) co_return Unexpected{std::move(record).error()};
  if (!*record) co_return std::optional<std::string>{};
  auto plaintext = box_.Decrypt((*record)->ciphertext, AssociatedData(name));
  if (!plaintext) co_return Unexpected{std::move(plaintext).error()};
  co_return std::optional<std::string>(std::move(*plaintext));
}

Task<Expected<bool>> SecretStore::Delete(std::string_view name) { co_return co_await repository_.Delete(name); }

Task<Expected<RotationReport>> SecretStore::Rotate() {
  auto secrets = co_await repository_.List();
  if (!secrets) co_return Unexpected{std::move(secrets).error()};
  RotationReport report;
  for (const auto& secret : *secrets) {
    if (!box_.NeedsRotation(secret.ciphertext)) {
      ++report.unchanged;
      continue;
    }
    auto resealed = box_.Reencrypt(secret.ciphertext, AssociatedData(secret.name));
    if (!resealed) {
      co_return MakeError(ErrorCode::kInvalidArgument,
                          fmt::format("secret \"{}\": {}", secret.name, resealed.error().message));
    }
    auto replaced = co_await repository_.Replace(secret.name, secret.ciphertext, *resealed, FormatRfc3339(clock_.Now()));
    if (!replaced) co_return Unexpected{std::move(replaced).error()};
    // false: a concurrent Put wrote a fresh value, sealed under the current key already.
    ++(*replaced ? report.rotated : report.unchanged);
  }
  co_return report;
}

}  // namespace chatd::accounts
