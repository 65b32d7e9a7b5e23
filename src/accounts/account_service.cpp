// AccountService: the policy of accounts over store::AccountsRepository.
//
// Authentication is the hot path (every request). An API key is resolved by its SHA-256
// through a TTL cache of principals; an access token is verified locally and then the
// user's status (active, role, token_version) comes from a second TTL cache. So a warm
// request touches no database, and a security change made on this instance (revoke,
// disable, role or password change, delete) erases the affected entries at once; other
// instances see it within principal_cache_ttl.
//
// Sessions end through token_version: every access token carries the version of its user
// when issued (`ver`), and a password/role/active change bumps the version, so older
// tokens fail the status check without a deny-list.
//
// Login hardening: unknown emails are verified against a dummy hash (same cost as a real
// one), consecutive failures are slowed down progressively and, at lockout_threshold,
// lock the account for lockout_duration.
#include "accounts/account_service.hpp"

#include <algorithm>
#include <atomic>
#include <limits>

#include <fmt/format.h>
#include <simdjson.h>

#include "accounts/jwt.hpp"
#include "accounts/tokens.hpp"
#include "accounts/validation.hpp"
#include "cache/ttl_cache.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "store/accounts_repository.hpp"

namespace chatd::accounts {

namespace {

constexpr std::size_t kMaxCachedPrincipals = 65536;
// last_used_at is written at most this often per key (per instance).
constexpr std::chrono::seconds kTouchInterval{60};
// Longer inputs cannot be credentials we issued; refused before any work.
constexpr std::size_t kMaxLoginPasswordBytes = 4 * kMaxPasswordLength;
constexpr std::size_t kMaxRefreshTokenBytes = 256;
constexpr std::size_t kApiKeyLength = kApiKeyPrefix.size() + 43;
constexpr std::size_t kMaxUserQueryLength = 254;

Unexpected BadCredentials() { return MakeError(ErrorCode::kUnauthenticated, "incorrect email or password"); }
Unexpected NeedsSession() {
  return MakeError(ErrorCode::kPermissionDenied, "this action requires an access token, not an API key");
}
Unexpected NeedsAdmin() { return MakeError(ErrorCode::kPermissionDenied, "this action requires the admin role"); }
Unexpected UserNotFound() { return MakeError(ErrorCode::kNotFound, "user not found"); }

Unexpected Locked(std::chrono::seconds remaining) {
  const auto seconds = std::max<std::int64_t>(1, remaining.count());
  return MakeError(ErrorCode::kRateLimited,
                   fmt::format("account is temporarily locked; try again in {} seconds", seconds),
                   std::to_string(seconds));
}

std::int64_t EpochSeconds(SystemTime time) {
  return std::chrono::duration_cast<std::chrono::seconds>(time.time_since_epoch()).count();
}

// Ceiling, so "try again in N seconds" is never too early.
std::chrono::seconds SecondsUntil(SystemTime from, SystemTime to) {
  return std::chrono::ceil<std::chrono::seconds>(to - from);
}

// A stored timestamp in the future of `now`?
bool IsAfter(const std::string& stored, SystemTime now) {
  if (stored.empty()) return false;
  const auto time = ParseRfc3339(stored);
  return time && *time > now;
}

Role RoleOf(const std::string& name) { return ParseRole(name).value_or(Role::kUser); }

User ToUser(const store::UserRecord& record) {
  User user;
  user.id = record.id;
  user.email = record.email;
  user.name = record.name;
  user.role = RoleOf(record.role);
  user.is_active = record.is_active;
  user.created_at = record.created_at;
  user.updated_at = record.updated_at;
  user.last_login_at = record.last_login_at;
  return user;
}

std::string ScopesJson(std::uint8_t scopes) {
  JsonWriter json;
  json.BeginArray();
  for (const Scope scope : {Scope::kChat, Scope::kGateway, Scope::kAdmin}) {
    if (scopes & static_cast<std::uint8_t>(scope)) json.String(ScopeName(scope));
  }
  json.EndArray();
  return std::move(json).str();
}

std::uint8_t ParseScopesJson(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::array array;
  if (parser.parse(json.data(), json.size()).get(array) != simdjson::SUCCESS) return 0;
  std::uint8_t scopes = 0;
  for (const auto element : array) {
    std::string_view name;
    if (element.get(name) != simdjson::SUCCESS) continue;
    if (const auto scope = ParseScope(name)) scopes |= static_cast<std::uint8_t>(*scope);
  }
  return scopes;
}

std::vector<std::string> ScopeNames(std::uint8_t scopes) {
  std::vector<std::string> names;
  for (const Scope scope : {Scope::kChat, Scope::kGateway, Scope::kAdmin}) {
    if (scopes & static_cast<std::uint8_t>(scope)) names.emplace_back(ScopeName(scope));
  }
  return names;
}

ApiKey ToApiKey(const store::ApiKeyRecord& record) {
  ApiKey key;
  key.id = record.id;
  key.name = record.name;
  key.prefix = record.prefix;
  key.scopes = ScopeNames(ParseScopesJson(record.scopes));
  key.expires_at = record.expires_at;
  key.last_used_at = record.last_used_at;
  key.created_at = record.created_at;
  key.limits = FromRecord(record.limits);
  return key;
}

Unexpected ApiKeyNotFound() { return MakeError(ErrorCode::kNotFound, "API key not found"); }

}  // namespace

struct AccountService::Impl {
  // A resolved API key, as cached by the hash of the key.
  struct CachedKey {
    Principal principal;
    SystemTime expires_at = SystemTime::max();  // the key's own expiry
  };
  // What the access-token path needs to know about a user, cached by user id.
  struct UserStatus {
    std::string email;
    Role role = Role::kUser;
    bool is_active = false;
    std::int64_t token_version = 0;
  };

  Impl(AccountsConfig config_in, store::Database& database, BlockingPool& pool, const Clock& clock_in)
      : config(std::move(config_in)),
        repo(database),
        hashing_pool(pool),
        clock(clock_in),
        jwt(config.secret_key),
        keys(clock, config.principal_cache_ttl, kMaxCachedPrincipals),
        users(clock, config.principal_cache_ttl, kMaxCachedPrincipals),
        touched(clock, kTouchInterval, kMaxCachedPrincipals),
        key_limits(clock, config.principal_cache_ttl, kMaxCachedPrincipals),
        // A hash of a random password with the same cost as real ones, so that an unknown
        // email costs one full verification, like a wrong password.
        dummy_hash(HashPassword(RandomToken(16), config.password_hash)) {}

  std::string Now() const { return FormatRfc3339(clock.Now()); }

  Task<Expected<bool>> Verify(std::string_view password, const std::string& hash) {
    co_return co_await Offload(hashing_pool, [&]() -> Expected<bool> { return VerifyPassword(password, hash); });
  }

  Task<Expected<std::string>> Hash(std::string_view password) {
    const PasswordHashParams params = config.password_hash;
    co_return co_await Offload(hashing_pool, [&]() -> Expected<std::string> { return HashPassword(password, params); });
  }

  // Waits before answering the n-th consecutive failure (n >= 3), on the caller's executor.
  Task<void> SlowDown(std::int64_t failures) {
    if (failures < 3 || config.failed_login_delay <= std::chrono::milliseconds::zero()) co_return;
    const std::int64_t doublings = std::min<std::int64_t>(failures - 3, 20);
    const auto delay =
        std::min(config.failed_login_delay * (std::int64_t{1} << doublings), config.max_failed_login_delay);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(delay);
    co_await timer.async_wait(kUseAwaitable);
  }

  Task<Expected<TokenPair>> IssueTokens(const store::UserRecord& user) {
    const SystemTime now = clock.Now();
    const std::string refresh = RandomToken();
    store::RefreshTokenRecord record;
    record.id = NewUuidV7();
    record.user_id = user.id;
    record.family_id = NewUuidV7();  // a new login starts a new family
    record.token_hash = Sha256Hex(refresh);
    record.expires_at = FormatRfc3339(now + config.refresh_token_ttl);
    record.created_at = FormatRfc3339(now);
    auto stored = co_await repo.InsertRefreshToken(record);
    if (!stored) co_return Unexpected{std::move(stored).error()};
    co_return TokenPair{AccessToken(user, now), refresh, config.access_token_ttl.count()};
  }

  std::string AccessToken(const store::UserRecord& user, SystemTime now) const {
    AccessClaims claims;
    claims.sub = user.id;
    claims.role = user.role;
    claims.ver = user.token_version;
    claims.jti = NewUuidV7();
    claims.iat = EpochSeconds(now);
    claims.nbf = claims.iat;
    claims.exp = claims.iat + config.access_token_ttl.count();
    return jwt.Sign(claims);
  }

  Task<Expected<User>> CreateUser(std::string_view email, std::string_view password, std::string_view name, Role role) {
    auto normalized = NormalizeEmail(email);
    if (!normalized) co_return Unexpected{std::move(normalized).error()};
    if (auto valid = CheckName(name, "name"); !valid) co_return Unexpected{std::move(valid).error()};
    if (auto valid = CheckPasswordPolicy(password); !valid) co_return Unexpected{std::move(valid).error()};
    auto hash = co_await Hash(password);
    if (!hash) co_return Unexpected{std::move(hash).error()};
    store::UserRecord record;
    record.id = NewUuidV7();
    record.email = std::move(*normalized);
    record.password_hash = std::move(*hash);
    record.name = std::string(name);
    record.role = std::string(RoleName(role));
    record.created_at = Now();
    record.updated_at = record.created_at;
    auto inserted = co_await repo.InsertUser(record);
    if (!inserted) co_return Unexpected{std::move(inserted).error()};
    co_return ToUser(record);
  }

  /// The caller's user, kNotFound when it is gone.
  Task<Expected<store::UserRecord>> LoadUser(std::string_view user_id) {
    auto user = co_await repo.FindUserById(user_id);
    if (!user) co_return Unexpected{std::move(user).error()};
    if (!user->has_value()) co_return UserNotFound();
    co_return std::move(**user);
  }

  // --- authentication -------------------------------------------------------------------

  Task<Expected<Principal>> AuthenticateApiKey(std::string_view credential) {
    if (credential.size() != kApiKeyLength) co_return MakeError(ErrorCode::kUnauthenticated, "invalid API key");
    const SystemTime now = clock.Now();
    const std::string hash = Sha256Hex(credential);
    if (auto cached = keys.Get(hash)) {
      if (cached->expires_at <= now) {
        keys.Erase(hash);
        co_return MakeError(ErrorCode::kUnauthenticated, "API key expired");
      }
      if (!touched.Get(cached->principal.api_key_id)) {  // most requests: no coroutine to start
        const std::string never_used;
        co_await MaybeTouch(cached->principal.user_id, cached->principal.api_key_id, never_used, now);
      }
      co_return std::move(cached->principal);
    }

    const std::uint64_t epoch = invalidations.load();
    auto found = co_await repo.FindApiKeyByHash(hash);
    if (!found) co_return Unexpected{std::move(found).error()};
    if (!found->has_value()) co_return MakeError(ErrorCode::kUnauthenticated, "invalid API key");
    const store::ApiKeyOwner& owner = **found;
    CachedKey entry;
    if (!owner.key.expires_at.empty()) {
      entry.expires_at = ParseRfc3339(owner.key.expires_at).value_or(SystemTime::min());
    }
    if (entry.expires_at <= now) co_return MakeError(ErrorCode::kUnauthenticated, "API key expired");
    if (!owner.is_active) co_return MakeError(ErrorCode::kUnauthenticated, "account is disabled");
    Principal& principal = entry.principal;
    principal.user_id = owner.key.user_id;
    principal.email = owner.email;
    principal.role = RoleOf(owner.role);
    principal.api_key_id = owner.key.id;
    principal.scopes = ParseScopesJson(owner.key.scopes);
    // The admin scope means nothing on a key whose owner is no longer an admin.
    if (principal.role != Role::kAdmin)
      principal.scopes &= static_cast<std::uint8_t>(~static_cast<std::uint8_t>(Scope::kAdmin));
    keys.Put(hash, entry);
    if (invalidations.load() != epoch) keys.Erase(hash);  // see Invalidated()
    co_await MaybeTouch(principal.user_id, principal.api_key_id, owner.key.last_used_at, now);
    co_return std::move(entry.principal);
  }

  // Records the use of a key at most once per kTouchInterval, without making the request
  // wait: the write runs detached on the caller's executor.
  Task<void> MaybeTouch(const std::string& user_id, const std::string& key_id, const std::string& last_used_at,
                        SystemTime now) {
    if (touched.Get(key_id)) co_return;
    if (const auto last = last_used_at.empty() ? std::nullopt : ParseRfc3339(last_used_at);
        last && *last + kTouchInterval > now) {
      touched.Put(key_id, true, std::chrono::duration_cast<std::chrono::milliseconds>(*last + kTouchInterval - now));
      co_return;
    }
    touched.Put(key_id, true);
    auto executor = co_await asio::this_coro::executor;
    asio::co_spawn(executor, Touch(user_id, key_id, FormatRfc3339(now)), asio::detached);
  }

  Task<void> Touch(std::string user_id, std::string key_id, std::string now) {
    auto touched_key = co_await repo.TouchApiKey(user_id, key_id, now);
    if (!touched_key) {
      log::Warn("could not record API key use", {{"key_id", key_id}, {"error", touched_key.error().message}});
    }
  }

  Task<Expected<Principal>> AuthenticateAccessToken(std::string_view credential) {
    auto claims = jwt.Verify(credential, clock.Now());
    if (!claims) co_return Unexpected{std::move(claims).error()};
    std::optional<UserStatus> status = users.Get(claims->sub);
    if (!status) {
      const std::uint64_t epoch = invalidations.load();
      auto user = co_await repo.FindUserById(claims->sub);
      if (!user) co_return Unexpected{std::move(user).error()};
      if (!user->has_value()) co_return MakeError(ErrorCode::kUnauthenticated, "user no longer exists");
      const store::UserRecord& record = **user;
      status = UserStatus{record.email, RoleOf(record.role), record.is_active, record.token_version};
      users.Put(record.id, *status);
      if (invalidations.load() != epoch) users.Erase(record.id);
    }
    if (!status->is_active) co_return MakeError(ErrorCode::kUnauthenticated, "account is disabled");
    if (claims->ver != status->token_version) {
      co_return MakeError(ErrorCode::kUnauthenticated, "session has ended; sign in again");
    }
    Principal principal;
    principal.user_id = std::move(claims->sub);
    principal.email = std::move(status->email);
    principal.role = status->role;
    principal.scopes = kAllScopes;
    co_return principal;
  }

  /// Forgets everything cached about a user (status and API keys), at once. Call after
  /// the change is committed.
  void InvalidateUser(const std::string& user_id) {
    Invalidated();
    users.Erase(user_id);
    keys.EraseIf([&](std::string_view, const CachedKey& entry) { return entry.principal.user_id == user_id; });
  }

  void Revoke(const SessionRevocation& revocation) const {
    for (const auto& listener : revocation_listeners) listener(revocation);
  }

  void InvalidateApiKey(std::string_view key_id) {
    Invalidated();
    keys.EraseIf([&](std::string_view, const CachedKey& entry) { return entry.principal.api_key_id == key_id; });
    key_limits.Erase(key_id);
  }

  /// Applies `change` to the live key `key_id` of `owner_id` (empty: of anyone).
  Task<Expected<ApiKey>> UpdateLimits(std::string owner_id, std::string_view key_id, const KeyLimitsChange& change) {
    if (!LooksLikeUuid(key_id)) co_return ApiKeyNotFound();
    auto found = co_await repo.FindLiveApiKey(key_id);
    if (!found) co_return Unexpected{std::move(found).error()};
    if (!found->has_value() || (!owner_id.empty() && (*found)->user_id != owner_id)) co_return ApiKeyNotFound();
    KeyLimits limits = ApplyChange(FromRecord((*found)->limits), change);
    if (auto valid = NormalizeKeyLimits(limits); !valid) co_return Unexpected{std::move(valid).error()};
    const store::ApiKeyLimitsRecord record = ToRecord(limits);
    auto updated = co_await repo.UpdateApiKeyLimits(owner_id, key_id, record);
    if (!updated) co_return Unexpected{std::move(updated).error()};
    if (!updated->has_value()) co_return ApiKeyNotFound();  // revoked meanwhile
    Invalidated();
    key_limits.Erase(key_id);
    co_return ToApiKey(**updated);
  }

  // A cache miss that read the database before a change committed must not put its stale
  // answer back after the change's erase. Invalidations bump the epoch before erasing;
  // a miss notes the epoch before its query, puts, then erases its own entry again if
  // the epoch moved meanwhile. Either the miss sees the bump, or the bump (and so the
  // erase) comes after its put.
  void Invalidated() { invalidations.fetch_add(1); }

  AccountsConfig config;
  std::vector<RevocationListener> revocation_listeners;
  store::AccountsRepository repo;
  BlockingPool& hashing_pool;
  const Clock& clock;
  JwtCodec jwt;
  cache::TtlCache<CachedKey> keys;    // SHA-256 of an API key -> its principal
  cache::TtlCache<UserStatus> users;  // user id -> status, for access tokens
  cache::TtlCache<bool> touched;      // API key ids whose last_used_at is fresh
  cache::TtlCache<std::shared_ptr<const KeyLimits>> key_limits;  // API key id -> its limits
  std::string dummy_hash;
  std::atomic<std::uint64_t> invalidations{0};
};

AccountService::AccountService(AccountsConfig config, store::Database& database, BlockingPool& hashing_pool,
                               const Clock& clock) {
  if (config.secret_key.empty()) throw std::invalid_argument("accounts: secret_key is required");
  impl_ = std::make_unique<Impl>(std::move(config), database, hashing_pool, clock);
}

AccountService::~AccountService() = default;

void AccountService::OnRevocation(RevocationListener listener) {
  impl_->revocation_listeners.push_back(std::move(listener));
}

Task<Expected<User>> AccountService::Register(std::string_view email, std::string_view password,
                                              std::string_view name) {
  if (!impl_->config.allow_registration) {
    co_return MakeError(ErrorCode::kPermissionDenied, "registration is closed");
  }
  co_return co_await impl_->CreateUser(email, password, name, Role::kUser);
}

Task<Expected<User>> AccountService::CreateUser(std::string_view email, std::string_view password,
                                                std::string_view name, Role role) {
  co_return co_await impl_->CreateUser(email, password, name, role);
}

Task<Expected<TokenPair>> AccountService::Login(std::string_view email, std::string_view password) {
  Impl& impl = *impl_;
  auto normalized = NormalizeEmail(email);
  // No account can have such an email, so answering at once reveals nothing.
  if (!normalized || password.size() > kMaxLoginPasswordBytes) co_return BadCredentials();

  auto found = co_await impl.repo.FindUserByEmail(*normalized);
  if (!found) co_return Unexpected{std::move(found).error()};
  if (!found->has_value()) {
    auto verified = co_await impl.Verify(password, impl.dummy_hash);
    if (!verified) co_return Unexpected{std::move(verified).error()};
    co_return BadCredentials();
  }
  const store::UserRecord& user = **found;

  SystemTime now = impl.clock.Now();
  if (IsAfter(user.locked_until, now)) {
    co_return Locked(SecondsUntil(now, *ParseRfc3339(user.locked_until)));
  }

  const bool has_password = !user.password_hash.empty();
  const std::string& hash = has_password ? user.password_hash : impl.dummy_hash;
  auto verified = co_await impl.Verify(password, hash);
  if (!verified) co_return Unexpected{std::move(verified).error()};
  if (!*verified || !has_password) {
    now = impl.clock.Now();
    const std::string lock_until = FormatRfc3339(now + impl.config.lockout_duration);
    // lockout_threshold <= 0 turns the lockout off.
    const std::int64_t threshold =
        impl.config.lockout_threshold > 0 ? impl.config.lockout_threshold : std::numeric_limits<std::int32_t>::max();
    auto failure = co_await impl.repo.RecordFailedLogin(user.id, threshold, lock_until);
    if (!failure) co_return Unexpected{std::move(failure).error()};
    if (IsAfter(failure->locked_until, now)) {
      // This attempt is answered like any wrong password; the lock greets the next ones.
      log::Warn("account locked after failed logins", {{"user_id", user.id}});
      co_return BadCredentials();
    }
    co_await impl.SlowDown(failure->failed_logins);
    co_return BadCredentials();
  }
  // The same answer as a wrong password: a disabled account is not confirmed to exist.
  if (!user.is_active) co_return BadCredentials();

  const std::string login_time = impl.Now();
  auto recorded = co_await impl.repo.RecordSuccessfulLogin(user.id, login_time);
  if (!recorded) co_return Unexpected{std::move(recorded).error()};
  co_return co_await impl.IssueTokens(user);
}

Task<Expected<TokenPair>> AccountService::Refresh(std::string_view refresh_token) {
  Impl& impl = *impl_;
  if (refresh_token.empty() || refresh_token.size() > kMaxRefreshTokenBytes) {
    co_return MakeError(ErrorCode::kUnauthenticated, "invalid refresh token");
  }
  const SystemTime now = impl.clock.Now();
  const std::string next_token = RandomToken();
  store::RefreshTokenRecord next;
  next.id = NewUuidV7();
  next.token_hash = Sha256Hex(next_token);
  next.expires_at = FormatRfc3339(now + impl.config.refresh_token_ttl);
  next.created_at = FormatRfc3339(now);
  const std::string old_hash = Sha256Hex(refresh_token);
  const std::string now_text = FormatRfc3339(now);
  auto rotated = co_await impl.repo.RotateRefreshToken(old_hash, std::move(next), now_text);
  if (!rotated) co_return Unexpected{std::move(rotated).error()};
  switch (rotated->outcome) {
    case store::RotateOutcome::kNotFound:
      co_return MakeError(ErrorCode::kUnauthenticated, "invalid refresh token");
    case store::RotateOutcome::kExpired:
      co_return MakeError(ErrorCode::kUnauthenticated, "refresh token expired");
    case store::RotateOutcome::kReused:
      log::Warn("spent refresh token presented again; its family is revoked", {{"user_id", rotated->user_id}});
      co_return MakeError(ErrorCode::kUnauthenticated, "refresh token already used; sign in again");
    case store::RotateOutcome::kRotated:
      break;
  }
  auto user = co_await impl.repo.FindUserById(rotated->user_id);
  if (!user) co_return Unexpected{std::move(user).error()};
  if (!user->has_value() || !(*user)->is_active)
    co_return MakeError(ErrorCode::kUnauthenticated, "invalid refresh token");
  co_return TokenPair{impl.AccessToken(**user, now), next_token, impl.config.access_token_ttl.count()};
}

Task<Expected<void>> AccountService::Logout(std::string_view refresh_token) {
  // Unknown or malformed tokens are not an error: the session is over either way.
  if (refresh_token.empty() || refresh_token.size() > kMaxRefreshTokenBytes) co_return Expected<void>{};
  const std::string hash = Sha256Hex(refresh_token);
  const std::string now = impl_->Now();
  co_return co_await impl_->repo.RevokeRefreshFamily(hash, now);
}

Task<Expected<Principal>> AccountService::Authenticate(std::string_view credential) {
  if (LooksLikeApiKey(credential)) co_return co_await impl_->AuthenticateApiKey(credential);
  co_return co_await impl_->AuthenticateAccessToken(credential);
}

Task<Expected<User>> AccountService::GetUser(const Principal& caller) {
  auto user = co_await impl_->LoadUser(caller.user_id);
  if (!user) co_return Unexpected{std::move(user).error()};
  co_return ToUser(*user);
}

Task<Expected<User>> AccountService::UpdateProfile(const Principal& caller, const ProfileChange& change) {
  Impl& impl = *impl_;
  std::optional<std::string> email;
  if (change.email) {
    auto normalized = NormalizeEmail(*change.email);
    if (!normalized) co_return Unexpected{std::move(normalized).error()};
    email = std::move(*normalized);
  }
  if (change.name) {
    if (auto valid = CheckName(*change.name, "name"); !valid) co_return Unexpected{std::move(valid).error()};
  }
  const std::string now = impl.Now();
  auto updated = co_await impl.repo.UpdateProfile(caller.user_id, change.name, email, now);
  if (!updated) co_return Unexpected{std::move(updated).error()};
  if (!updated->has_value()) co_return UserNotFound();
  impl.InvalidateUser(caller.user_id);  // the cached principals carry the email
  co_return ToUser(**updated);
}

Task<Expected<void>> AccountService::ChangePassword(const Principal& caller, std::string_view current_password,
                                                    std::string_view new_password) {
  Impl& impl = *impl_;
  if (caller.ViaApiKey()) co_return NeedsSession();
  if (auto valid = CheckPasswordPolicy(new_password, "new_password"); !valid) {
    co_return Unexpected{std::move(valid).error()};
  }
  auto user = co_await impl.LoadUser(caller.user_id);
  if (!user) co_return Unexpected{std::move(user).error()};
  if (current_password.size() > kMaxLoginPasswordBytes) {
    co_return MakeError(ErrorCode::kInvalidArgument, "current password is incorrect", "current_password");
  }
  const bool has_password = !user->password_hash.empty();
  const std::string& current_hash = has_password ? user->password_hash : impl.dummy_hash;
  auto verified = co_await impl.Verify(current_password, current_hash);
  if (!verified) co_return Unexpected{std::move(verified).error()};
  if (!*verified || !has_password) {
    co_return MakeError(ErrorCode::kInvalidArgument, "current password is incorrect", "current_password");
  }
  auto hash = co_await impl.Hash(new_password);
  if (!hash) co_return Unexpected{std::move(hash).error()};
  const std::string now = impl.Now();
  auto changed = co_await impl.repo.ChangePassword(caller.user_id, *hash, now);
  if (!changed) co_return Unexpected{std::move(changed).error()};
  impl.InvalidateUser(caller.user_id);
  if (!*changed) co_return UserNotFound();
  impl.Revoke({caller.user_id, {}});
  co_return Expected<void>{};
}

Task<Expected<void>> AccountService::DeleteAccount(const Principal& caller) {
  Impl& impl = *impl_;
  if (caller.ViaApiKey()) co_return NeedsSession();
  auto deleted = co_await impl.repo.DeleteUser(caller.user_id);
  if (!deleted) co_return Unexpected{std::move(deleted).error()};
  impl.InvalidateUser(caller.user_id);
  if (!*deleted) co_return UserNotFound();
  impl.Revoke({caller.user_id, {}});
  co_return Expected<void>{};
}

Task<Expected<CreatedApiKey>> AccountService::CreateApiKey(const Principal& caller, const NewApiKey& request) {
  Impl& impl = *impl_;
  if (caller.ViaApiKey()) co_return NeedsSession();
  if (auto valid = CheckName(request.name, "name", 1); !valid) co_return Unexpected{std::move(valid).error()};

  std::uint8_t scopes = 0;
  if (request.scopes.empty()) {
    scopes = static_cast<std::uint8_t>(Scope::kChat) | static_cast<std::uint8_t>(Scope::kGateway);
    if (caller.IsAdmin()) scopes |= static_cast<std::uint8_t>(Scope::kAdmin);
  } else {
    for (const std::string& name : request.scopes) {
      const auto scope = ParseScope(name);
      if (!scope) {
        co_return MakeError(ErrorCode::kInvalidArgument,
                            fmt::format("unknown scope \"{}\"; use chat, gateway or admin", name.substr(0, 40)),
                            "scopes");
      }
      if (*scope == Scope::kAdmin && !caller.IsAdmin()) {
        co_return MakeError(ErrorCode::kPermissionDenied, "only admins can create keys with the admin scope", "scopes");
      }
      scopes |= static_cast<std::uint8_t>(*scope);
    }
  }

  const SystemTime now = impl.clock.Now();
  std::string expires_at;
  if (!request.expires_at.empty()) {
    const auto parsed = ParseRfc3339(request.expires_at);
    if (!parsed) {
      co_return MakeError(ErrorCode::kInvalidArgument, "expires_at must be an RFC 3339 time", "expires_at");
    }
    if (*parsed <= now)
      co_return MakeError(ErrorCode::kInvalidArgument, "expires_at must be in the future", "expires_at");
    expires_at = FormatRfc3339(*parsed);
  }

  KeyLimits limits = request.limits;
  if (auto valid = NormalizeKeyLimits(limits); !valid) co_return Unexpected{std::move(valid).error()};

  CreatedApiKey created;
  created.secret = NewApiKeySecret();
  store::ApiKeyRecord record;
  record.id = NewUuidV7();
  record.user_id = caller.user_id;
  record.name = request.name;
  record.key_hash = Sha256Hex(created.secret);
  record.prefix = created.secret.substr(0, kApiKeyDisplayLength);
  record.scopes = ScopesJson(scopes);
  record.expires_at = expires_at;
  record.created_at = FormatRfc3339(now);
  record.limits = ToRecord(limits);
  auto inserted = co_await impl.repo.InsertApiKey(record);
  if (!inserted) co_return Unexpected{std::move(inserted).error()};
  created.key = ToApiKey(record);
  co_return created;
}

Task<Expected<Page<ApiKey>>> AccountService::ListApiKeys(const Principal& caller, const PageRequest& page) {
  auto records = co_await impl_->repo.ListApiKeys(caller.user_id, page);
  if (!records) co_return Unexpected{std::move(records).error()};
  Page<ApiKey> out;
  out.items.reserve(records->items.size());
  for (const auto& record : records->items) out.items.push_back(ToApiKey(record));
  out.next_cursor = std::move(records->next_cursor);
  co_return out;
}

Task<Expected<void>> AccountService::RevokeApiKey(const Principal& caller, std::string_view key_id) {
  Impl& impl = *impl_;
  if (!LooksLikeUuid(key_id)) co_return ApiKeyNotFound();
  const std::string now = impl.Now();
  auto revoked = co_await impl.repo.RevokeApiKey(caller.user_id, key_id, now);
  if (!revoked) co_return Unexpected{std::move(revoked).error()};
  if (!*revoked) co_return ApiKeyNotFound();
  impl.InvalidateApiKey(key_id);
  impl.Revoke({caller.user_id, std::string(key_id)});
  co_return Expected<void>{};
}

Task<Expected<ApiKey>> AccountService::UpdateApiKeyLimits(const Principal& caller, std::string_view key_id,
                                                          const KeyLimitsChange& change) {
  if (caller.ViaApiKey()) co_return NeedsSession();
  co_return co_await impl_->UpdateLimits(caller.user_id, key_id, change);
}

Task<Expected<ApiKey>> AccountService::AdminUpdateApiKeyLimits(const Principal& caller, std::string_view key_id,
                                                               const KeyLimitsChange& change) {
  if (!caller.IsAdmin()) co_return NeedsAdmin();
  co_return co_await impl_->UpdateLimits({}, key_id, change);
}

Task<Expected<std::shared_ptr<const KeyLimits>>> AccountService::ApiKeyLimits(std::string_view key_id) {
  Impl& impl = *impl_;
  if (auto cached = impl.key_limits.Get(key_id)) co_return std::move(*cached);
  if (!LooksLikeUuid(key_id)) co_return ApiKeyNotFound();
  const std::uint64_t epoch = impl.invalidations.load();
  auto found = co_await impl.repo.FindLiveApiKey(key_id);
  if (!found) co_return Unexpected{std::move(found).error()};
  if (!found->has_value()) co_return ApiKeyNotFound();
  auto limits = std::make_shared<const KeyLimits>(FromRecord((*found)->limits));
  const std::string id(key_id);
  impl.key_limits.Put(id, limits);
  if (impl.invalidations.load() != epoch) impl.key_limits.Erase(id);  // see Invalidated()
  co_return limits;
}

Task<Expected<Page<User>>> AccountService::ListUsers(const Principal& caller, std::string_view query,
                                                     const PageRequest& page) {
  if (!caller.IsAdmin()) co_return NeedsAdmin();
  if (query.size() > kMaxUserQueryLength) {
    co_return MakeError(ErrorCode::kInvalidArgument, "q must be at most 254 characters", "q");
  }
  auto records = co_await impl_->repo.ListUsers(query, page);
  if (!records) co_return Unexpected{std::move(records).error()};
  Page<User> out;
  out.items.reserve(records->items.size());
  for (const auto& record : records->items) out.items.push_back(ToUser(record));
  out.next_cursor = std::move(records->next_cursor);
  co_return out;
}

Task<Expected<User>> AccountService::AdminUpdateUser(const Principal& caller, std::string_view user_id,
                                                     const AdminUserChange& change) {
  Impl& impl = *impl_;
  if (!caller.IsAdmin()) co_return NeedsAdmin();
  if (user_id == caller.user_id) {
    if (change.is_active && !*change.is_active) {
      co_return MakeError(ErrorCode::kInvalidArgument, "you cannot disable your own account", "is_active");
    }
    if (change.role && *change.role != Role::kAdmin) {
      co_return MakeError(ErrorCode::kInvalidArgument, "you cannot remove your own admin role", "role");
    }
  }
  if (!LooksLikeUuid(user_id)) co_return UserNotFound();
  store::UserAdminUpdate update;
  update.is_active = change.is_active;
  if (change.role) update.role = std::string(RoleName(*change.role));
  const std::string now = impl.Now();
  auto updated = co_await impl.repo.AdminUpdateUser(user_id, update, now);
  if (!updated) co_return Unexpected{std::move(updated).error()};
  if (!updated->has_value()) co_return UserNotFound();
  impl.InvalidateUser((*updated)->id);
  if ((change.is_active && !*change.is_active) || change.role) impl.Revoke({(*updated)->id, {}});
  co_return ToUser(**updated);
}

}  // namespace chatd::accounts
