#include "store/secrets_repository.hpp"

namespace chatd::store {

namespace {

constexpr std::string_view kPut =
    "INSERT INTO secrets (name, ciphertext, updated_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at";
constexpr std::string_view kGet = "SELECT name, ciphertext, updated_at FROM secrets WHERE name = $1";
constexpr std::string_view kList = "SELECT name, ciphertext, updated_at FROM secrets ORDER BY name";
constexpr std::string_view kReplace =
    "UPDATE secrets SET ciphertext = $3, updated_at = $4 WHERE name = $1 AND ciphertext = $2";
constexpr std::string_view kDelete = "DELETE FROM secrets WHERE name = $1";

SecretRecord ReadSecret(const Result& result, std::size_t row) {
  return SecretRecord{result.Text(row, "name"), result.Text(row, "ciphertext"), result.Text(row, "updated_at")};
}

}  // namespace

Task<Expected<void>> SecretsRepository::Put(std::string_view name, std::string_view ciphertext, std::string_view now) {
  Params params{std::string(name), std::string(ciphertext), std::string(now)};
  auto result = co_await database_.Execute(kPut, std::move(params));
  if (!result) co_return Unexpected{std::move(result).error()};
  co_return Expected<void>{};
}

Task<Expected<std::optional<SecretRecord>>> SecretsRepository::Get(std::string_view name) {
  Params params{std::string(name)};
  auto result = co_await database_.Execute(kGet, std::move(params));
  if (!result) co_return Unexpected{std::move(result).error()};
  if (result->empty()) co_return std::optional<SecretRecord>{};
  co_return std::optional<SecretRecord>(ReadSecret(*result, 0));
}

Task<Expected<std::vector<SecretRecord>>> SecretsRepository::List() {
  auto result = co_await database_.Execute(kList);
  if (!result) co_return Unexpected{std::move(result).error()};
  std::vector<SecretRecord> secrets;
  secrets.reserve(result->size());
  for (std::size_t row = 0; row < result->size(); ++row) secrets.push_back(ReadSecret(*result, row));
  co_return secrets;
}

Task<Expected<bool>> SecretsRepository::Replace(std::string_view name, std::string_view expected,
                                                std::string_view ciphertext, std::string_view now) {
  Params params{std::string(name), std::string(expected), std::string(ciphertext), std::string(now)};
  auto result = co_await database_.Execute(kReplace, std::move(params));
  if (!result) co_return Unexpected{std::move(result).error()};
  co_return result->affected_rows > 0;
}

Task<Expected<bool>> SecretsRepository::Delete(std::string_view name) {
  Params params{std::string(name)};
  auto result = co_await database_.Execute(kDelete, std::move(params));
  if (!result) co_return Unexpected{std::move(result).error()};
  co_return result->affected_rows > 0;
}

}  // namespace chatd::store
