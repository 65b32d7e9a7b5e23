#include "store/accounts_repository.hpp"

#include <utility>

#include "store/keyset.hpp"

namespace chatd::store {

namespace {

// --- SQL -----------------------------------------------------------------------------

constexpr std::string_view kUserColumns =
    "id, email, password_hash, name, role, is_active, token_version, failed_logins, locked_until, "
    "last_login_at, created_at, updated_at";

constexpr std::string_view kInsertUser =
    "INSERT INTO users (id, email, password_hash, name, role, is_active, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

// The lock starts when this failure reaches the threshold; the count restarts with it, so
// after the lock the account gets `threshold` more attempts. locked_until keeps an old
// (past) value otherwise: callers compare it with the time.
constexpr std::string_view kRecordFailedLogin =
    "UPDATE users SET "
    "failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END, "
    "locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END "
    "WHERE id = $1 RETURNING failed_logins, locked_until";

constexpr std::string_view kRecordSuccessfulLogin =
    "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1";

constexpr std::string_view kChangePassword =
    "UPDATE users SET password_hash = $2, token_version = token_version + 1, failed_logins = 0, "
    "locked_until = NULL, updated_at = $3 WHERE id = $1";

constexpr std::string_view kRevokeUserRefreshTokens =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";

constexpr std::string_view kDeleteUser = "DELETE FROM users WHERE id = $1";

// COALESCE keeps a field the admin did not send; the version moves only on a real change.
constexpr std::string_view kAdminUpdateUser =
    "UPDATE users SET "
    "token_version = token_version + "
    "CASE WHEN is_active <> COALESCE($2, is_active) OR role <> COALESCE($3, role) THEN 1 ELSE 0 END, "
    "is_active = COALESCE($2, is_active), role = COALESCE($3, role), "
    "failed_logins = 0, locked_until = NULL, updated_at = $4 WHERE id = $1";

constexpr std::string_view kInsertRefreshToken =
    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6)";

constexpr std::string_view kSelectRefreshToken =
    "SELECT id, user_id, family_id, expires_at, revoked_at, replaced_by FROM refresh_tokens "
    "WHERE token_hash = $1";

// Conditional, so that of two concurrent rotations of one token only one spends it (in
// PostgreSQL the second waits for the first's row lock, then matches nothing).
constexpr std::string_view kSpendRefreshToken =
    "UPDATE refresh_tokens SET replaced_by = $2 "
    "WHERE id = $1 AND user_id = $3 AND replaced_by IS NULL AND revoked_at IS NULL";

constexpr std::string_view kRevokeFamily =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND user_id = $3 AND revoked_at IS NULL";

constexpr std::string_view kRevokeFamilyByHash =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE revoked_at IS NULL AND family_id IN "
    "(SELECT family_id FROM refresh_tokens WHERE token_hash = $1)";

constexpr std::string_view kApiKeyColumns =
    "id, user_id, name, key_hash, prefix, scopes, expires_at, last_used_at, revoked_at, created_at, "
    "allowed_models, rpm_limit, tpm_limit, budget_amount, budget_unit, budget_period, response_cache";

constexpr std::string_view kInsertApiKey =
    "INSERT INTO api_keys (id, user_id, name, key_hash, prefix, scopes, expires_at, created_at, "
    "allowed_models, rpm_limit, tpm_limit, budget_amount, budget_unit, budget_period, response_cache) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

// $9 empty: an admin's change, whoever owns the key.
constexpr std::string_view kUpdateApiKeyLimits =
    "UPDATE api_keys SET allowed_models = $1, rpm_limit = $2, tpm_limit = $3, budget_amount = $4, "
    "budget_unit = $5, budget_period = $6, response_cache = $7 "
    "WHERE id = $8 AND (user_id = $9 OR $9 = '') AND revoked_at IS NULL RETURNING ";

constexpr std::string_view kFindLiveApiKey = "FROM api_keys WHERE id = $1 AND revoked_at IS NULL";

constexpr std::string_view kRevokeApiKey =
    "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";

constexpr std::string_view kFindApiKeyByHash =
    "SELECT k.id AS id, k.user_id AS user_id, k.name AS name, k.key_hash AS key_hash, k.prefix AS prefix, "
    "k.scopes AS scopes, k.expires_at AS expires_at, k.last_used_at AS last_used_at, "
    "k.revoked_at AS revoked_at, k.created_at AS created_at, k.allowed_models AS allowed_models, "
    "k.rpm_limit AS rpm_limit, k.tpm_limit AS tpm_limit, k.budget_amount AS budget_amount, "
    "k.budget_unit AS budget_unit, k.budget_period AS budget_period, k.response_cache AS response_cache, "
    "u.email AS email, u.role AS role, u.is_active AS is_active "
    "FROM api_keys k JOIN users u ON u.id = k.user_id "
    "WHERE k.key_hash = $1 AND k.revoked_at IS NULL";

constexpr std::string_view kTouchApiKey = "UPDATE api_keys SET last_used_at = $3 WHERE id = $1 AND user_id = $2";

// --- helpers -------------------------------------------------------------------------

Param Nullable(const std::string& text) { return text.empty() ? Param(nullptr) : Param(text); }
Param Nullable(const std::optional<std::int64_t>& value) { return value ? Param(*value) : Param(nullptr); }
Param Nullable(const std::optional<double>& value) { return value ? Param(*value) : Param(nullptr); }
Param Flag(bool value) { return std::int64_t{value ? 1 : 0}; }  // PostgreSQL reads '1'/'0' as booleans

UserRecord ReadUser(const Result& rows, std::size_t i) {
  UserRecord user;
  user.id = rows.Text(i, "id");
  user.email = rows.Text(i, "email");
  user.password_hash = rows.Text(i, "password_hash");
  user.name = rows.Text(i, "name");
  user.role = rows.Text(i, "role");
  user.is_active = rows.Int(i, "is_active") != 0;
  user.token_version = rows.Int(i, "token_version");
  user.failed_logins = rows.Int(i, "failed_logins");
  user.locked_until = rows.Text(i, "locked_until");
  user.last_login_at = rows.Text(i, "last_login_at");
  user.created_at = rows.Text(i, "created_at");
  user.updated_at = rows.Text(i, "updated_at");
  return user;
}

ApiKeyRecord ReadApiKey(const Result& rows, std::size_t i) {
  ApiKeyRecord key;
  key.id = rows.Text(i, "id");
  key.user_id = rows.Text(i, "user_id");
  key.name = rows.Text(i, "name");
  key.key_hash = rows.Text(i, "key_hash");
  key.prefix = rows.Text(i, "prefix");
  key.scopes = rows.Text(i, "scopes");
  key.expires_at = rows.Text(i, "expires_at");
  key.last_used_at = rows.Text(i, "last_used_at");
  key.revoked_at = rows.Text(i, "revoked_at");
  key.created_at = rows.Text(i, "created_at");
  ApiKeyLimitsRecord& limits = key.limits;
  limits.allowed_models = rows.Text(i, "allowed_models");
  if (!rows.IsNull(i, "rpm_limit")) limits.rpm_limit = rows.Int(i, "rpm_limit");
  if (!rows.IsNull(i, "tpm_limit")) limits.tpm_limit = rows.Int(i, "tpm_limit");
  if (!rows.IsNull(i, "budget_amount")) limits.budget_amount = rows.Number(i, "budget_amount");
  limits.budget_unit = rows.Text(i, "budget_unit");
  limits.budget_period = rows.Text(i, "budget_period");
  limits.response_cache = rows.Int(i, "response_cache") != 0;
  return key;
}

Unexpected EmailTaken() { return MakeError(ErrorCode::kConflict, "email is already registered", "email"); }

}  // namespace

// --- users -----------------------------------------------------------------------------

Task<Expected<void>> AccountsRepository::InsertUser(const UserRecord& user) {
  Params params{user.id,         user.email,     Nullable(user.password_hash),
                user.name,       user.role,      std::int64_t{user.is_active ? 1 : 0},
                user.created_at, user.updated_at};
  auto inserted = co_await db_.Execute(kInsertUser, std::move(params));
  if (!inserted) {
    if (inserted.error().code == ErrorCode::kConflict) co_return EmailTaken();
    co_return Unexpected{std::move(inserted).error()};
  }
  co_return Expected<void>{};
}

Task<Expected<std::optional<UserRecord>>> AccountsRepository::FindUserById(std::string_view user_id) {
  Params params{std::string(user_id)};
  static const std::string sql = "SELECT " + std::string(kUserColumns) + " FROM users WHERE id = $1";
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<UserRecord>();
  co_return std::optional<UserRecord>(ReadUser(*rows, 0));
}

Task<Expected<std::optional<UserRecord>>> AccountsRepository::FindUserByEmail(std::string_view email) {
  Params params{std::string(email)};
  static const std::string sql = "SELECT " + std::string(kUserColumns) + " FROM users WHERE email = $1";
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<UserRecord>();
  co_return std::optional<UserRecord>(ReadUser(*rows, 0));
}

Task<Expected<LoginFailure>> AccountsRepository::RecordFailedLogin(std::string_view user_id, std::int64_t threshold,
                                                                   std::string_view lock_until) {
  Params params{std::string(user_id), threshold, std::string(lock_until)};
  auto rows = co_await db_.Execute(kRecordFailedLogin, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return MakeError(ErrorCode::kNotFound, "user not found");
  LoginFailure failure;
  failure.failed_logins = rows->Int(0, "failed_logins");
  failure.locked_until = rows->Text(0, "locked_until");
  co_return failure;
}

Task<Expected<void>> AccountsRepository::RecordSuccessfulLogin(std::string_view user_id, std::string_view now) {
  Params params{std::string(user_id), std::string(now)};
  auto updated = co_await db_.Execute(kRecordSuccessfulLogin, std::move(params));
  if (!updated) co_return Unexpected{std::move(updated).error()};
  co_return Expected<void>{};
}

Task<Expected<std::optional<UserRecord>>> AccountsRepository::UpdateProfile(std::string_view user_id,
                                                                            const std::optional<std::string>& name,
                                                                            const std::optional<std::string>& email,
                                                                            std::string_view now) {
  Params params{std::string(user_id), std::string(now)};
  std::string sql = "UPDATE users SET updated_at = $2";
  if (name) {
    params.emplace_back(*name);
    sql += ", name = $" + std::to_string(params.size());
  }
  if (email) {
    params.emplace_back(*email);
    sql += ", email = $" + std::to_string(params.size());
  }
  sql += " WHERE id = $1 RETURNING ";
  sql += kUserColumns;
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) {
    if (rows.error().code == ErrorCode::kConflict) co_return EmailTaken();
    co_return Unexpected{std::move(rows).error()};
  }
  if (rows->empty()) co_return std::optional<UserRecord>();
  co_return std::optional<UserRecord>(ReadUser(*rows, 0));
}

Task<Expected<bool>> AccountsRepository::ChangePassword(std::string_view user_id, std::string_view password_hash,
                                                        std::string_view now) {
  auto tx = co_await db_.Begin();
  if (!tx) co_return Unexpected{std::move(tx).error()};
  Params user_params{std::string(user_id), std::string(password_hash), std::string(now)};
  auto updated = co_await (*tx)->Execute(kChangePassword, std::move(user_params));
  if (!updated) co_return Unexpected{std::move(updated).error()};
  if (updated->affected_rows == 0) co_return false;
  Params token_params{std::string(user_id), std::string(now)};
  auto revoked = co_await (*tx)->Execute(kRevokeUserRefreshTokens, std::move(token_params));
  if (!revoked) co_return Unexpected{std::move(revoked).error()};
  auto committed = co_await (*tx)->Commit();
  if (!committed) co_return Unexpected{std::move(committed).error()};
  co_return true;
}

Task<Expected<bool>> AccountsRepository::DeleteUser(std::string_view user_id) {
  Params params{std::string(user_id)};
  auto deleted = co_await db_.Execute(kDeleteUser, std::move(params));
  if (!deleted) co_return Unexpected{std::move(deleted).error()};
  co_return deleted->affected_rows > 0;
}

Task<Expected<std::optional<UserRecord>>> AccountsRepository::AdminUpdateUser(std::string_view user_id,
                                                                              const UserAdminUpdate& update,
                                                                              std::string_view now) {
  static const std::string select_sql = "SELECT token_version FROM users WHERE id = $1";
  static const std::string update_sql = std::string(kAdminUpdateUser) + " RETURNING " + std::string(kUserColumns);
  auto tx = co_await db_.Begin();
  if (!tx) co_return Unexpected{std::move(tx).error()};
  Transaction& t = **tx;
  Params select_params{std::string(user_id)};
  auto before = co_await t.Execute(select_sql, std::move(select_params));
  if (!before) co_return Unexpected{std::move(before).error()};
  if (before->empty()) co_return std::optional<UserRecord>();

  Params update_params{std::string(user_id),
                       update.is_active ? Param(std::int64_t{*update.is_active ? 1 : 0}) : Param(nullptr),
                       update.role ? Param(*update.role) : Param(nullptr), std::string(now)};
  auto rows = co_await t.Execute(update_sql, std::move(update_params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<UserRecord>();
  UserRecord user = ReadUser(*rows, 0);
  if (user.token_version != before->Int(0, "token_version")) {
    Params token_params{std::string(user_id), std::string(now)};
    auto revoked = co_await t.Execute(kRevokeUserRefreshTokens, std::move(token_params));
    if (!revoked) co_return Unexpected{std::move(revoked).error()};
  }
  auto committed = co_await t.Commit();
  if (!committed) co_return Unexpected{std::move(committed).error()};
  co_return std::optional<UserRecord>(std::move(user));
}

Task<Expected<Page<UserRecord>>> AccountsRepository::ListUsers(std::string_view query, const PageRequest& page) {
  Params params;
  std::string sql = "SELECT " + std::string(kUserColumns) + " FROM users WHERE 1 = 1";
  if (!query.empty()) {
    params.emplace_back(LikeSubstringPattern(query));
    const std::string n = std::to_string(params.size());
    sql += " AND (LOWER(email) LIKE $" + n + " ESCAPE '\\' OR LOWER(name) LIKE $" + n + " ESCAPE '\\')";
  }
  auto limit = AppendKeysetPage(sql, params, page, "created_at", SortOrder::kAscending);
  if (!limit) co_return Unexpected{std::move(limit).error()};
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  co_return ReadKeysetPage<UserRecord>(*rows, *limit, ReadUser, [](const UserRecord& u) { return u.created_at; });
}

// --- refresh tokens ------------------------------------------------------------------

Task<Expected<void>> AccountsRepository::InsertRefreshToken(const RefreshTokenRecord& token) {
  Params params{token.id, token.user_id, token.family_id, token.token_hash, token.expires_at, token.created_at};
  auto inserted = co_await db_.Execute(kInsertRefreshToken, std::move(params));
  if (!inserted) co_return Unexpected{std::move(inserted).error()};
  co_return Expected<void>{};
}

Task<Expected<RotateResult>> AccountsRepository::RotateRefreshToken(std::string_view old_hash, RefreshTokenRecord next,
                                                                    std::string_view now) {
  auto tx = co_await db_.Begin();
  if (!tx) co_return Unexpected{std::move(tx).error()};
  Transaction& t = **tx;

  Params select_params{std::string(old_hash)};
  auto rows = co_await t.Execute(kSelectRefreshToken, std::move(select_params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return RotateResult{RotateOutcome::kNotFound, {}};

  const std::string old_id = rows->Text(0, "id");
  RotateResult result{RotateOutcome::kRotated, rows->Text(0, "user_id")};
  const std::string family_id = rows->Text(0, "family_id");
  bool spent = !rows->IsNull(0, "revoked_at") || !rows->IsNull(0, "replaced_by");

  if (!spent) {
    // Same format on both sides (RFC 3339, milliseconds, Z), so text order is time order.
    if (rows->Text(0, "expires_at") <= now) co_return RotateResult{RotateOutcome::kExpired, result.user_id};
    next.user_id = result.user_id;
    next.family_id = family_id;
    Params spend_params{old_id, next.id, result.user_id};
    auto spend = co_await t.Execute(kSpendRefreshToken, std::move(spend_params));
    if (!spend) co_return Unexpected{std::move(spend).error()};
    spent = spend->affected_rows == 0;  // a concurrent rotation got there first
  }

  if (spent) {
    Params revoke_params{family_id, std::string(now), result.user_id};
    auto revoked = co_await t.Execute(kRevokeFamily, std::move(revoke_params));
    if (!revoked) co_return Unexpected{std::move(revoked).error()};
    result.outcome = RotateOutcome::kReused;
  } else {
    Params insert_params{next.id, next.user_id, next.family_id, next.token_hash, next.expires_at, next.created_at};
    auto inserted = co_await t.Execute(kInsertRefreshToken, std::move(insert_params));
    if (!inserted) co_return Unexpected{std::move(inserted).error()};
  }
  auto committed = co_await t.Commit();
  if (!committed) co_return Unexpected{std::move(committed).error()};
  co_return result;
}

Task<Expected<void>> AccountsRepository::RevokeRefreshFamily(std::string_view token_hash, std::string_view now) {
  Params params{std::string(token_hash), std::string(now)};
  auto revoked = co_await db_.Execute(kRevokeFamilyByHash, std::move(params));
  if (!revoked) co_return Unexpected{std::move(revoked).error()};
  co_return Expected<void>{};
}

// --- API keys --------------------------------------------------------------------------

Task<Expected<void>> AccountsRepository::InsertApiKey(const ApiKeyRecord& key) {
  const ApiKeyLimitsRecord& limits = key.limits;
  Params params{key.id,
                key.user_id,
                key.name,
                key.key_hash,
                key.prefix,
                key.scopes,
                Nullable(key.expires_at),
                key.created_at,
                Nullable(limits.allowed_models),
                Nullable(limits.rpm_limit),
                Nullable(limits.tpm_limit),
                Nullable(limits.budget_amount),
                Nullable(limits.budget_unit),
                Nullable(limits.budget_period),
                Flag(limits.response_cache)};
  auto inserted = co_await db_.Execute(kInsertApiKey, std::move(params));
  if (!inserted) co_return Unexpected{std::move(inserted).error()};
  co_return Expected<void>{};
}

Task<Expected<Page<ApiKeyRecord>>> AccountsRepository::ListApiKeys(std::string_view user_id, const PageRequest& page) {
  Params params{std::string(user_id)};
  std::string sql =
      "SELECT " + std::string(kApiKeyColumns) + " FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL";
  auto limit = AppendKeysetPage(sql, params, page, "created_at", SortOrder::kDescending);
  if (!limit) co_return Unexpected{std::move(limit).error()};
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  co_return ReadKeysetPage<ApiKeyRecord>(*rows, *limit, ReadApiKey, [](const ApiKeyRecord& k) { return k.created_at; });
}

Task<Expected<bool>> AccountsRepository::RevokeApiKey(std::string_view user_id, std::string_view key_id,
                                                      std::string_view now) {
  Params params{std::string(key_id), std::string(user_id), std::string(now)};
  auto revoked = co_await db_.Execute(kRevokeApiKey, std::move(params));
  if (!revoked) co_return Unexpected{std::move(revoked).error()};
  co_return revoked->affected_rows > 0;
}

Task<Expected<std::optional<ApiKeyOwner>>> AccountsRepository::FindApiKeyByHash(std::string_view key_hash) {
  Params params{std::string(key_hash)};
  auto rows = co_await db_.Execute(kFindApiKeyByHash, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<ApiKeyOwner>();
  ApiKeyOwner owner;
  owner.key = ReadApiKey(*rows, 0);
  owner.email = rows->Text(0, "email");
  owner.role = rows->Text(0, "role");
  owner.is_active = rows->Int(0, "is_active") != 0;
  co_return std::optional<ApiKeyOwner>(std::move(owner));
}

Task<Expected<std::optional<ApiKeyRecord>>> AccountsRepository::FindLiveApiKey(std::string_view key_id) {
  Params params{std::string(key_id)};
  const std::string sql = "SELECT " + std::string(kApiKeyColumns) + " " + std::string(kFindLiveApiKey);
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<ApiKeyRecord>();
  co_return std::optional<ApiKeyRecord>(ReadApiKey(*rows, 0));
}

Task<Expected<std::optional<ApiKeyRecord>>> AccountsRepository::UpdateApiKeyLimits(std::string_view user_id,
                                                                                   std::string_view key_id,
                                                                                   const ApiKeyLimitsRecord& limits) {
  Params params{Nullable(limits.allowed_models), Nullable(limits.rpm_limit),   Nullable(limits.tpm_limit),
                Nullable(limits.budget_amount),  Nullable(limits.budget_unit), Nullable(limits.budget_period),
                Flag(limits.response_cache),     std::string(key_id),          std::string(user_id)};
  const std::string sql = std::string(kUpdateApiKeyLimits) + std::string(kApiKeyColumns);
  auto rows = co_await db_.Execute(sql, std::move(params));
  if (!rows) co_return Unexpected{std::move(rows).error()};
  if (rows->empty()) co_return std::optional<ApiKeyRecord>();
  co_return std::optional<ApiKeyRecord>(ReadApiKey(*rows, 0));
}

Task<Expected<void>> AccountsRepository::TouchApiKey(std::string_view user_id, std::string_view key_id,
                                                     std::string_view now) {
  Params params{std::string(key_id), std::string(user_id), std::string(now)};
  auto touched = co_await db_.Execute(kTouchApiKey, std::move(params));
  if (!touched) co_return Unexpected{std::move(touched).error()};
  co_return Expected<void>{};
}

}  // namespace chatd::store
