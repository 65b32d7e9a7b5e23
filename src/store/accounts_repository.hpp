// The SQL behind accounts: users, refresh tokens and API keys. Plain records in, plain
// records out; no policy (that is accounts::AccountService's job).
//
// Isolation lives in the SQL: every statement on a user-owned row (refresh tokens, API
// keys) names `user_id = $n` itself, so another user's id matches nothing and the caller
// sees "not found" rather than a row filtered away afterwards.
//
// Times are RFC 3339 UTC strings with milliseconds, written by the caller from its Clock
// (never the database's now()), so tests with a manual clock see consistent rows and
// keyset cursors compare exactly in both dialects.
//
// Lists are keyset-paginated. The cursor is opaque to clients: base64url of
// "created_at|id" of the last row of the page; a cursor that does not decode is
// kInvalidArgument with param "cursor".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/page.hpp"
#include "store/database.hpp"

namespace chatd::store {

struct UserRecord {
  std::string id;
  std::string email;
  std::string password_hash;  // empty: no password (cannot log in)
  std::string name;
  std::string role = "user";  // "user" | "admin"
  bool is_active = true;
  std::int64_t token_version = 0;
  std::int64_t failed_logins = 0;
  std::string locked_until;   // empty: not locked
  std::string last_login_at;  // empty: never
  std::string created_at;
  std::string updated_at;
};

struct RefreshTokenRecord {
  std::string id;
  std::string user_id;
  std::string family_id;   // every token descended from one login shares it
  std::string token_hash;  // SHA-256 hex of the token; the token itself is never stored
  std::string expires_at;
  std::string revoked_at;   // empty: not revoked
  std::string replaced_by;  // empty: not yet rotated
  std::string created_at;
};

/// What a key may call and how much (migration 6); every field absent means "no limit".
/// And whether the gateway may cache its answers (migration 7). The policy (validation,
/// enforcement) is not the store's: see accounts/key_limits.hpp.
struct ApiKeyLimitsRecord {
  std::string allowed_models;  // JSON array of public model names; empty (NULL): every model
  std::optional<std::int64_t> rpm_limit;
  std::optional<std::int64_t> tpm_limit;
  std::optional<double> budget_amount;  // with budget_unit and budget_period, or none of them
  std::string budget_unit;              // "tokens" | "usd"
  std::string budget_period;            // "day" | "month"
  bool response_cache = true;           // false: the key opted out of the response cache
};

struct ApiKeyRecord {
  std::string id;
  std::string user_id;
  std::string name;
  std::string key_hash;  // SHA-256 hex of the key
  std::string prefix;
  std::string scopes = "[]";  // JSON array of scope names
  std::string expires_at;     // empty: never
  std::string last_used_at;   // empty: never
  std::string revoked_at;     // empty: live
  std::string created_at;
  ApiKeyLimitsRecord limits;
};

/// An API key with the fields of its owner that authentication needs.
struct ApiKeyOwner {
  ApiKeyRecord key;
  std::string email;
  std::string role;
  bool is_active = false;
};

/// The counters after a failed login.
struct LoginFailure {
  std::int64_t failed_logins = 0;  // consecutive failures, reset to 0 when a lock starts
  std::string locked_until;        // empty: not locked
};

enum class RotateOutcome {
  kRotated,   // the old token is spent, the new one stored
  kReused,    // the old token was already spent or revoked: its whole family is now revoked
  kExpired,   // the old token expired (nothing changed)
  kNotFound,  // no such token
};

struct RotateResult {
  RotateOutcome outcome = RotateOutcome::kNotFound;
  std::string user_id;  // the token's owner (kRotated, kReused, kExpired)
};

/// Changes an admin makes to a user; each absent field stays as it is.
struct UserAdminUpdate {
  std::optional<bool> is_active;
  std::optional<std::string> role;
};

class AccountsRepository {
 public:
  explicit AccountsRepository(Database& database) : db_(database) {}

  // --- users ---
  /// kConflict (param "email") when the email is taken.
  Task<Expected<void>> InsertUser(const UserRecord& user);
  Task<Expected<std::optional<UserRecord>>> FindUserById(std::string_view user_id);
  Task<Expected<std::optional<UserRecord>>> FindUserByEmail(std::string_view email);
  /// Counts one failed login; when the count reaches `threshold`, locks the account until
  /// `lock_until` and resets the count.
  Task<Expected<LoginFailure>> RecordFailedLogin(std::string_view user_id, std::int64_t threshold,
                                                 std::string_view lock_until);
  /// Clears the failure count and any lock, and stamps last_login_at.
  Task<Expected<void>> RecordSuccessfulLogin(std::string_view user_id, std::string_view now);
  /// Name and/or email; nullopt when the user does not exist; kConflict (param "email")
  /// when the new email is taken.
  Task<Expected<std::optional<UserRecord>>> UpdateProfile(std::string_view user_id,
                                                          const std::optional<std::string>& name,
                                                          const std::optional<std::string>& email,
                                                          std::string_view now);
  /// In one transaction: sets the hash, bumps token_version, clears any lock and revokes
  /// every refresh token of the user. False when the user does not exist.
  Task<Expected<bool>> ChangePassword(std::string_view user_id, std::string_view password_hash, std::string_view now);
  /// Deletes the user; their tokens, keys, conversations... go with it (ON DELETE CASCADE).
  /// False when there was no such user.
  Task<Expected<bool>> DeleteUser(std::string_view user_id);
  /// In one transaction: applies `update`, clears any lock and, when is_active or role
  /// actually changes, bumps token_version and revokes every refresh token of the user.
  /// nullopt when the user does not exist.
  Task<Expected<std::optional<UserRecord>>> AdminUpdateUser(std::string_view user_id, const UserAdminUpdate& update,
                                                            std::string_view now);
  /// Oldest first (created_at, id). `query` (may be empty) matches a substring of the email
  /// or the name, case-insensitively; % and _ in it are literal.
  Task<Expected<Page<UserRecord>>> ListUsers(std::string_view query, const PageRequest& page);

  // --- refresh tokens ---
  Task<Expected<void>> InsertRefreshToken(const RefreshTokenRecord& token);
  /// In one transaction: spends the token whose hash is `old_hash` and stores `next` in its
  /// family (next.user_id and next.family_id are filled in from the old token). A token
  /// already spent or revoked revokes its whole family instead (kReused): someone holds a
  /// copy of a token that was used. Concurrent rotations of one token: one wins, the others
  /// see kReused.
  Task<Expected<RotateResult>> RotateRefreshToken(std::string_view old_hash, RefreshTokenRecord next,
                                                  std::string_view now);
  /// Revokes the family of the token with this hash (a logout). No-op for an unknown hash.
  Task<Expected<void>> RevokeRefreshFamily(std::string_view token_hash, std::string_view now);

  // --- API keys ---
  Task<Expected<void>> InsertApiKey(const ApiKeyRecord& key);
  /// The caller's live (unrevoked) keys, newest first (created_at, id).
  Task<Expected<Page<ApiKeyRecord>>> ListApiKeys(std::string_view user_id, const PageRequest& page);
  /// False when the key is not the user's, does not exist or is already revoked.
  Task<Expected<bool>> RevokeApiKey(std::string_view user_id, std::string_view key_id, std::string_view now);
  /// The unrevoked key with this hash and its owner; expiry and the owner's status are
  /// the caller's to check.
  Task<Expected<std::optional<ApiKeyOwner>>> FindApiKeyByHash(std::string_view key_hash);
  /// The unrevoked key with this id, whoever owns it (the gateway's limits lookup).
  Task<Expected<std::optional<ApiKeyRecord>>> FindLiveApiKey(std::string_view key_id);
  /// Replaces the limits of the unrevoked key `key_id`; `user_id` empty: any owner (an
  /// admin's change), else only that user's key. The updated key, or nullopt when no
  /// such key matches.
  Task<Expected<std::optional<ApiKeyRecord>>> UpdateApiKeyLimits(std::string_view user_id, std::string_view key_id,
                                                                 const ApiKeyLimitsRecord& limits);
  /// Stamps last_used_at.
  Task<Expected<void>> TouchApiKey(std::string_view user_id, std::string_view key_id, std::string_view now);

 private:
  Database& db_;
};

}  // namespace chatd::store
