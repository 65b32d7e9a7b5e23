// Named secrets kept encrypted in the database (provider API keys and the like): Put
// seals with the current ENCRYPTION_KEY, Get opens with whichever key of the keyring
// sealed it, and Rotate re-seals everything under the current key — the second half of a
// key rotation (docs/operations: set the new key, keep the old in ENCRYPTION_KEY_PREVIOUS,
// run `chatd secrets rotate`, then drop the old key).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "accounts/secret_box.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "store/secrets_repository.hpp"

namespace chatd::accounts {

struct RotationReport {
  int rotated = 0;    // re-sealed under the current key
  int unchanged = 0;  // already under it
};

class SecretStore {
 public:
  SecretStore(store::Database& database, const SecretBox& box, const Clock& clock)
      : repository_(database), box_(box), clock_(clock) {}

  Task<Expected<void>> Put(std::string_view name, std::string_view plaintext);
  /// nullopt when there is no such secret; kInvalidArgument when it cannot be opened
  /// (its key is not in the keyring, or it was tampered with).
  Task<Expected<std::optional<std::string>>> Get(std::string_view name);
  Task<Expected<bool>> Delete(std::string_view name);
  /// Re-seals every secret not under the current key. A secret that cannot be opened
  /// stops the rotation with an error naming it, before anything is lost.
  Task<Expected<RotationReport>> Rotate();

 private:
  store::SecretsRepository repository_;
  const SecretBox& box_;
  const Clock& clock_;
};

}  // namespace chatd::accounts
