// Accounts: users, passwords, sessions (access + refresh tokens), API keys and roles.
//
// Every method runs on the calling I/O thread's coroutine and never blocks it: password
// hashing goes to the hashing pool, SQL to the store. Every method that touches a
// user-owned object takes the caller's Principal and scopes the query by its user id
// inside store/, so someone else's id is "not found", exactly like an id that does not
// exist.
//
// Errors: kInvalidArgument (with `param`) for bad input, kUnauthenticated for bad
// credentials or tokens, kPermissionDenied for a role/scope the caller lacks, kNotFound,
// kConflict (email taken), kRateLimited (account temporarily locked: the message ends with
// "try again in N seconds" and Error::param holds N as a decimal string, for Retry-After;
// the HTTP layer should move it into the header rather than show it as "param"),
// kUnavailable (database down, pool saturated).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accounts/key_limits.hpp"
#include "accounts/passwords.hpp"
#include "accounts/principal.hpp"
#include "core/asio.hpp"
#include "core/blocking_pool.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"

namespace chatd::accounts {

struct AccountsConfig {
  std::string secret_key;  // HS256 key for access tokens (SECRET_KEY), >= 32 bytes
  std::chrono::seconds access_token_ttl{30 * 60};          // ACCESS_TOKEN_EXPIRE_MINUTES
  std::chrono::seconds refresh_token_ttl{30 * 24 * 3600};  // REFRESH_TOKEN_EXPIRE_DAYS
  bool allow_registration = true;                          // ALLOW_REGISTRATION
  int lockout_threshold = 10;                               // failed logins before a lock
  std::chrono::seconds lockout_duration{15 * 60};           // how long a lock lasts
  std::chrono::milliseconds principal_cache_ttl{1000};      // API key / user status cache
  PasswordHashParams password_hash;                        // argon2id cost (tests lower it)
  // Progressive slow-down of failed logins: from the 3rd consecutive failure the answer
  // waits failed_login_delay * 2^(n-3), at most max_failed_login_delay.
  std::chrono::milliseconds failed_login_delay{250};
  std::chrono::milliseconds max_failed_login_delay{4000};
};

/// A user as the API shows it (never the password hash).
struct User {
  std::string id;
  std::string email;
  std::string name;
  Role role = Role::kUser;
  bool is_active = true;
  std::string created_at;  // RFC 3339
  std::string updated_at;
  std::string last_login_at;  // empty: never
};

struct TokenPair {
  std::string access_token;
  std::string refresh_token;
  std::int64_t expires_in = 0;  // seconds until the access token expires
};

struct ApiKey {
  std::string id;
  std::string name;
  std::string prefix;  // the first characters of the key, to recognise it in a list
  std::vector<std::string> scopes;
  std::string expires_at;    // empty: never
  std::string last_used_at;  // empty: never
  std::string created_at;
  KeyLimits limits;
};

struct CreatedApiKey {
  ApiKey key;
  std::string secret;  // the whole key, "sk-chatd-...": shown once, stored only as a hash
};

struct NewApiKey {
  std::string name;
  std::vector<std::string> scopes;  // empty: all of "chat", "gateway" (+ "admin" for admins)
  std::string expires_at;           // RFC 3339, empty: never; must be in the future
  KeyLimits limits;                 // none by default
};

struct ProfileChange {
  std::optional<std::string> name;
  std::optional<std::string> email;
};

struct AdminUserChange {
  std::optional<bool> is_active;
  std::optional<Role> role;
};

/// Live sessions (SSE streams, WebSocket connections) that must end now, because the
/// credential that opened them no longer stands.
struct SessionRevocation {
  std::string user_id;
  std::string api_key_id;  // set: only what this key opened; empty: all of the user's
};

using RevocationListener = std::function<void(const SessionRevocation&)>;

class AccountService {
 public:
  AccountService(AccountsConfig config, store::Database& database, BlockingPool& hashing_pool, const Clock& clock);
  ~AccountService();
  AccountService(const AccountService&) = delete;
  AccountService& operator=(const AccountService&) = delete;

  /// Adds a listener told whenever a user's sessions or one API key must end: password or
  /// role change, disable, account deletion, key revocation. Register at startup, before
  /// serving. Listeners run on the I/O thread that made the change, after it committed,
  /// and must not block.
  void OnRevocation(RevocationListener listener);

  /// Email is trimmed, lower-cased and validated; password 8..128 characters and not on
  /// the bundled list of common passwords. kPermissionDenied when registration is closed.
  Task<Expected<User>> Register(std::string_view email, std::string_view password, std::string_view name);
  /// For the CLI and ADMIN_EMAIL bootstrap: like Register, with a role, ignoring
  /// allow_registration.
  Task<Expected<User>> CreateUser(std::string_view email, std::string_view password, std::string_view name,
                                  Role role);
  /// An unknown email costs the same time as a wrong password. Repeated failures lock the
  /// account for lockout_duration (kRateLimited); a success or password change clears it.
  Task<Expected<TokenPair>> Login(std::string_view email, std::string_view password);
  /// Rotates: the presented token is spent and a new pair issued. A spent token presented
  /// again revokes its whole family (theft detection) and is kUnauthenticated.
  Task<Expected<TokenPair>> Refresh(std::string_view refresh_token);
  Task<Expected<void>> Logout(std::string_view refresh_token);

  /// Resolves a credential: an access token (JWT) or an API key ("sk-chatd-..."). Checks
  /// signature/expiry/type, that the user exists and is active, and that the token was
  /// issued after the user's last security change (password, role, disable). API keys
  /// are looked up through a cache (principal_cache_ttl), so most calls touch no database.
  Task<Expected<Principal>> Authenticate(std::string_view credential);

  Task<Expected<User>> GetUser(const Principal& caller);
  Task<Expected<User>> UpdateProfile(const Principal& caller, const ProfileChange& change);
  /// Revokes every refresh token of the user and invalidates outstanding access tokens.
  Task<Expected<void>> ChangePassword(const Principal& caller, std::string_view current_password,
                                      std::string_view new_password);
  /// Deletes the user and everything they own.
  Task<Expected<void>> DeleteAccount(const Principal& caller);

  Task<Expected<CreatedApiKey>> CreateApiKey(const Principal& caller, const NewApiKey& request);
  Task<Expected<Page<ApiKey>>> ListApiKeys(const Principal& caller, const PageRequest& page);
  /// kNotFound for a key that is not the caller's. Takes effect at once on this instance.
  Task<Expected<void>> RevokeApiKey(const Principal& caller, std::string_view key_id);
  /// Changes the limits of one of the caller's live keys; needs an access token (a key
  /// must not raise its own limits). kNotFound for a key that is not the caller's.
  /// Takes effect at once on this instance, on others within principal_cache_ttl.
  Task<Expected<ApiKey>> UpdateApiKeyLimits(const Principal& caller, std::string_view key_id,
                                            const KeyLimitsChange& change);
  /// The same for an admin, on any user's live key (kPermissionDenied for others).
  Task<Expected<ApiKey>> AdminUpdateApiKeyLimits(const Principal& caller, std::string_view key_id,
                                                 const KeyLimitsChange& change);
  /// The limits of a live key, for the gateway's admission on every /v1 request: through
  /// a cache (principal_cache_ttl) erased at once by changes made on this instance.
  /// kNotFound when the key is revoked or does not exist. Never null.
  Task<Expected<std::shared_ptr<const KeyLimits>>> ApiKeyLimits(std::string_view key_id);

  /// Admin only (kPermissionDenied otherwise). `query` filters by email or name.
  Task<Expected<Page<User>>> ListUsers(const Principal& caller, std::string_view query, const PageRequest& page);
  /// Disabling, or changing the role, ends the user's sessions at once on this instance
  /// (other instances within principal_cache_ttl); disabling also suspends their API keys
  /// until they are enabled again, and a demotion takes the admin scope from their keys.
  /// An admin cannot demote or disable themself. Clears a login lock.
  Task<Expected<User>> AdminUpdateUser(const Principal& caller, std::string_view user_id,
                                       const AdminUserChange& change);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chatd::accounts
