// Sealed secrets by name. The store sees ciphertext only; accounts::SecretStore seals and
// opens them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "store/database.hpp"

namespace chatd::store {

struct SecretRecord {
  std::string name;
  std::string ciphertext;
  std::string updated_at;
};

class SecretsRepository {
 public:
  explicit SecretsRepository(Database& database) : database_(database) {}

  /// Inserts or replaces the secret `name`.
  Task<Expected<void>> Put(std::string_view name, std::string_view ciphertext, std::string_view now);
  Task<Expected<std::optional<SecretRecord>>> Get(std::string_view name);
  /// Every secret, by name; for rotation.
  Task<Expected<std::vector<SecretRecord>>> List();
  /// Replaces the ciphertext only if it is still `expected` (a concurrent Put wins).
  Task<Expected<bool>> Replace(std::string_view name, std::string_view expected, std::string_view ciphertext,
                               std::string_view now);
  Task<Expected<bool>> Delete(std::string_view name);

 private:
  Database& database_;
};

}  // namespace chatd::store
