// AccountService flows on every backend (see accounts_test_database.hpp), with a manual
// clock and cheap argon2 parameters.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "accounts/account_service.hpp"
#include "accounts/jwt.hpp"
#include "accounts_test_database.hpp"
#include "core/ids.hpp"

namespace chatd::accounts {
namespace {

using namespace std::chrono_literals;
using chatd::testing::Backend;

constexpr std::string_view kPassword = "correct horse battery";
constexpr std::string_view kSecret = "test-secret-key-test-secret-key-0123456789";

class AccountServiceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    config_.secret_key = std::string(kSecret);
    config_.password_hash = PasswordHashParams{1, 8192};
    config_.failed_login_delay = 0ms;  // the slow-down has its own test
    Start();
  }

  void TearDown() override {
    database_.Drain();
    service_.reset();
  }

  void Start() {
    database_.Drain();
    service_ = std::make_unique<AccountService>(config_, database_.db(), pool_, clock_);
  }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  User Register(std::string_view email, std::string_view name = "") {
    auto user = Await(service_->Register(email, kPassword, name));
    EXPECT_TRUE(user) << user.error().message;
    return user ? *user : User{};
  }

  User MakeAdmin(std::string_view email) {
    auto user = Await(service_->CreateUser(email, kPassword, "Admin", Role::kAdmin));
    EXPECT_TRUE(user) << user.error().message;
    return user ? *user : User{};
  }

  TokenPair Login(std::string_view email, std::string_view password = kPassword) {
    auto tokens = Await(service_->Login(email, password));
    EXPECT_TRUE(tokens) << tokens.error().message;
    return tokens ? *tokens : TokenPair{};
  }

  Principal Auth(std::string_view credential) {
    auto principal = Await(service_->Authenticate(credential));
    EXPECT_TRUE(principal) << principal.error().message;
    return principal ? *principal : Principal{};
  }

  ErrorCode AuthFails(std::string_view credential) {
    auto principal = Await(service_->Authenticate(credential));
    EXPECT_FALSE(principal);
    return principal ? ErrorCode::kInternal : principal.error().code;
  }

  CreatedApiKey CreateKey(const Principal& caller, NewApiKey request = {"key", {}, ""}) {
    auto key = Await(service_->CreateApiKey(caller, request));
    EXPECT_TRUE(key) << key.error().message;
    return key ? *key : CreatedApiKey{};
  }

  static void ExpectError(const Error& error, ErrorCode code, std::string_view param = {}) {
    EXPECT_EQ(error.code, code) << error.message;
    EXPECT_EQ(error.param, param) << error.message;
  }

  chatd::testing::TestDatabase database_;
  ManualClock clock_;
  BlockingPool pool_{2, 64, "test-hash"};
  AccountsConfig config_;
  std::unique_ptr<AccountService> service_;
};

TEST_P(AccountServiceTest, RegisterLoginAuthenticate) {
  const User user = Register("  Alice@Example.COM ", "Alice");
  EXPECT_TRUE(LooksLikeUuid(user.id));
  EXPECT_EQ(user.email, "alice@example.com");
  EXPECT_EQ(user.name, "Alice");
  EXPECT_EQ(user.role, Role::kUser);
  EXPECT_TRUE(user.is_active);
  EXPECT_EQ(user.created_at, FormatRfc3339(clock_.Now()));
  EXPECT_EQ(user.last_login_at, "");

  const TokenPair tokens = Login("ALICE@example.com");
  EXPECT_EQ(tokens.expires_in, 1800);
  EXPECT_FALSE(tokens.refresh_token.empty());
  const Principal principal = Auth(tokens.access_token);
  EXPECT_EQ(principal.user_id, user.id);
  EXPECT_EQ(principal.email, "alice@example.com");
  EXPECT_EQ(principal.role, Role::kUser);
  EXPECT_FALSE(principal.ViaApiKey());
  EXPECT_FALSE(principal.IsAdmin());

  auto me = Await(service_->GetUser(principal));
  ASSERT_TRUE(me);
  EXPECT_EQ(me->last_login_at, FormatRfc3339(clock_.Now()));
}

TEST_P(AccountServiceTest, RegistrationValidates) {
  Register("taken@example.com");
  auto bad_email = Await(service_->Register("not-an-email", kPassword, ""));
  ASSERT_FALSE(bad_email);
  ExpectError(bad_email.error(), ErrorCode::kInvalidArgument, "email");
  auto short_password = Await(service_->Register("a@example.com", "short", ""));
  ASSERT_FALSE(short_password);
  ExpectError(short_password.error(), ErrorCode::kInvalidArgument, "password");
  auto common = Await(service_->Register("a@example.com", "Password123", ""));
  ASSERT_FALSE(common);
  ExpectError(common.error(), ErrorCode::kInvalidArgument, "password");
  auto long_name = Await(service_->Register("a@example.com", kPassword, std::string(101, 'n')));
  ASSERT_FALSE(long_name);
  ExpectError(long_name.error(), ErrorCode::kInvalidArgument, "name");
  auto taken = Await(service_->Register(" TAKEN@example.com", kPassword, ""));
  ASSERT_FALSE(taken);
  ExpectError(taken.error(), ErrorCode::kConflict, "email");

  config_.allow_registration = false;
  Start();
  auto closed = Await(service_->Register("new@example.com", kPassword, ""));
  ASSERT_FALSE(closed);
  ExpectError(closed.error(), ErrorCode::kPermissionDenied);
  // The CLI path ignores allow_registration.
  EXPECT_TRUE(Await(service_->CreateUser("new@example.com", kPassword, "", Role::kUser)));
}

TEST_P(AccountServiceTest, WrongPasswordUnknownEmailAndDisabledLookTheSame) {
  Register("bob@example.com");
  auto wrong = Await(service_->Login("bob@example.com", "not the password"));
  auto unknown = Await(service_->Login("nobody@example.com", kPassword));
  auto malformed = Await(service_->Login("nobody", kPassword));
  ASSERT_FALSE(wrong);
  ASSERT_FALSE(unknown);
  ASSERT_FALSE(malformed);
  for (const Error& error : {wrong.error(), unknown.error(), malformed.error()}) {
    EXPECT_EQ(error.code, ErrorCode::kUnauthenticated);
    EXPECT_EQ(error.message, "incorrect email or password");
  }
}

TEST_P(AccountServiceTest, RefreshRotatesAndReuseRevokesTheFamily) {
  Register("carol@example.com");
  const TokenPair first = Login("carol@example.com");
  const TokenPair other_session = Login("carol@example.com");

  auto second = Await(service_->Refresh(first.refresh_token));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second->refresh_token, first.refresh_token);
  Auth(second->access_token);

  // The spent token again: theft. Its family ends, including the token just issued.
  auto reuse = Await(service_->Refresh(first.refresh_token));
  ASSERT_FALSE(reuse);
  ExpectError(reuse.error(), ErrorCode::kUnauthenticated);
  auto descendant = Await(service_->Refresh(second->refresh_token));
  ASSERT_FALSE(descendant);
  ExpectError(descendant.error(), ErrorCode::kUnauthenticated);

  // Another login's family is untouched.
  auto independent = Await(service_->Refresh(other_session.refresh_token));
  EXPECT_TRUE(independent);

  auto garbage = Await(service_->Refresh("garbage"));
  ASSERT_FALSE(garbage);
  ExpectError(garbage.error(), ErrorCode::kUnauthenticated);
}

TEST_P(AccountServiceTest, RefreshTokensExpire) {
  Register("dan@example.com");
  const TokenPair tokens = Login("dan@example.com");
  clock_.Advance(std::chrono::duration_cast<std::chrono::milliseconds>(config_.refresh_token_ttl) + 1s);
  auto expired = Await(service_->Refresh(tokens.refresh_token));
  ASSERT_FALSE(expired);
  ExpectError(expired.error(), ErrorCode::kUnauthenticated);
}

TEST_P(AccountServiceTest, LogoutEndsTheSession) {
  Register("erin@example.com");
  const TokenPair tokens = Login("erin@example.com");
  auto rotated = Await(service_->Refresh(tokens.refresh_token));
  ASSERT_TRUE(rotated);
  ASSERT_TRUE(Await(service_->Logout(rotated->refresh_token)));
  EXPECT_FALSE(Await(service_->Refresh(rotated->refresh_token)));
  EXPECT_TRUE(Await(service_->Logout("unknown-token")));  // idempotent, reveals nothing
}

TEST_P(AccountServiceTest, AccessTokensExpire) {
  Register("fay@example.com");
  const TokenPair tokens = Login("fay@example.com");
  clock_.Advance(1799s);
  Auth(tokens.access_token);
  clock_.Advance(1s + kJwtLeeway);
  EXPECT_EQ(AuthFails(tokens.access_token), ErrorCode::kUnauthenticated);
}

TEST_P(AccountServiceTest, ChangePasswordEndsSessionsAtOnce) {
  config_.principal_cache_ttl = 1h;  // invalidation, not expiry, must do it
  Start();
  Register("gus@example.com");
  const TokenPair tokens = Login("gus@example.com");
  const Principal session = Auth(tokens.access_token);

  auto wrong = Await(service_->ChangePassword(session, "not it at all", "a brand new passphrase"));
  ASSERT_FALSE(wrong);
  ExpectError(wrong.error(), ErrorCode::kInvalidArgument, "current_password");
  auto weak = Await(service_->ChangePassword(session, kPassword, "password1"));
  ASSERT_FALSE(weak);
  ExpectError(weak.error(), ErrorCode::kInvalidArgument, "new_password");

  const CreatedApiKey key = CreateKey(session);
  const Principal via_key = Auth(key.secret);
  auto with_key = Await(service_->ChangePassword(via_key, kPassword, "a brand new passphrase"));
  ASSERT_FALSE(with_key);
  ExpectError(with_key.error(), ErrorCode::kPermissionDenied);

  ASSERT_TRUE(Await(service_->ChangePassword(session, kPassword, "a brand new passphrase")));
  EXPECT_EQ(AuthFails(tokens.access_token), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(Await(service_->Refresh(tokens.refresh_token)));
  EXPECT_FALSE(Await(service_->Login("gus@example.com", kPassword)));
  const TokenPair fresh = Login("gus@example.com", "a brand new passphrase");
  Auth(fresh.access_token);
  Auth(key.secret);  // API keys survive a password change (they have their own revoke)
}

TEST_P(AccountServiceTest, DisablingAUserEndsTokensAndKeysAtOnce) {
  config_.principal_cache_ttl = 1h;
  Start();
  MakeAdmin("root@example.com");
  const Principal admin = Auth(Login("root@example.com").access_token);
  const User user = Register("hal@example.com");
  const TokenPair tokens = Login("hal@example.com");
  const Principal session = Auth(tokens.access_token);
  const CreatedApiKey key = CreateKey(session);
  Auth(key.secret);  // both now cached

  AdminUserChange disable;
  disable.is_active = false;
  auto disabled = Await(service_->AdminUpdateUser(admin, user.id, disable));
  ASSERT_TRUE(disabled) << disabled.error().message;
  EXPECT_FALSE(disabled->is_active);
  EXPECT_EQ(AuthFails(tokens.access_token), ErrorCode::kUnauthenticated);
  EXPECT_EQ(AuthFails(key.secret), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(Await(service_->Refresh(tokens.refresh_token)));
  auto login = Await(service_->Login("hal@example.com", kPassword));
  ASSERT_FALSE(login);
  EXPECT_EQ(login.error().message, "incorrect email or password");

  AdminUserChange enable;
  enable.is_active = true;
  ASSERT_TRUE(Await(service_->AdminUpdateUser(admin, user.id, enable)));
  Auth(key.secret);                                                        // keys come back
  EXPECT_EQ(AuthFails(tokens.access_token), ErrorCode::kUnauthenticated);  // sessions do not
  Auth(Login("hal@example.com").access_token);
}

TEST_P(AccountServiceTest, RoleChangesEndSessionsAndAdminScope) {
  config_.principal_cache_ttl = 1h;
  Start();
  const User root = MakeAdmin("root@example.com");
  const Principal admin = Auth(Login("root@example.com").access_token);
  EXPECT_TRUE(admin.IsAdmin());
  const User other = MakeAdmin("other@example.com");
  const TokenPair other_tokens = Login("other@example.com");
  const CreatedApiKey other_key = CreateKey(Auth(other_tokens.access_token));
  EXPECT_EQ(other_key.key.scopes, (std::vector<std::string>{"chat", "gateway", "admin"}));
  EXPECT_TRUE(Auth(other_key.secret).IsAdmin());

  AdminUserChange demote;
  demote.role = Role::kUser;
  auto demoted = Await(service_->AdminUpdateUser(admin, other.id, demote));
  ASSERT_TRUE(demoted);
  EXPECT_EQ(demoted->role, Role::kUser);
  EXPECT_EQ(AuthFails(other_tokens.access_token), ErrorCode::kUnauthenticated);
  const Principal key_now = Auth(other_key.secret);
  EXPECT_FALSE(key_now.IsAdmin());
  EXPECT_FALSE(key_now.HasScope(Scope::kAdmin));
  EXPECT_TRUE(key_now.HasScope(Scope::kChat));
  (void)root;
}

TEST_P(AccountServiceTest, AdminChecks) {
  const User root = MakeAdmin("root@example.com");
  const Principal admin = Auth(Login("root@example.com").access_token);
  const User user = Register("ivy@example.com", "Ivy");
  const Principal member = Auth(Login("ivy@example.com").access_token);

  auto list = Await(service_->ListUsers(member, "", PageRequest{}));
  ASSERT_FALSE(list);
  ExpectError(list.error(), ErrorCode::kPermissionDenied);
  AdminUserChange promote;
  promote.role = Role::kAdmin;
  auto self_promote = Await(service_->AdminUpdateUser(member, user.id, promote));
  ASSERT_FALSE(self_promote);
  ExpectError(self_promote.error(), ErrorCode::kPermissionDenied);

  AdminUserChange disable;
  disable.is_active = false;
  auto self_disable = Await(service_->AdminUpdateUser(admin, root.id, disable));
  ASSERT_FALSE(self_disable);
  ExpectError(self_disable.error(), ErrorCode::kInvalidArgument, "is_active");
  AdminUserChange demote;
  demote.role = Role::kUser;
  auto self_demote = Await(service_->AdminUpdateUser(admin, root.id, demote));
  ASSERT_FALSE(self_demote);
  ExpectError(self_demote.error(), ErrorCode::kInvalidArgument, "role");
  auto missing = Await(service_->AdminUpdateUser(admin, NewUuidV7(), disable));
  ASSERT_FALSE(missing);
  ExpectError(missing.error(), ErrorCode::kNotFound);
  auto not_uuid = Await(service_->AdminUpdateUser(admin, "../etc", disable));
  ASSERT_FALSE(not_uuid);
  ExpectError(not_uuid.error(), ErrorCode::kNotFound);

  auto all = Await(service_->ListUsers(admin, "", PageRequest{}));
  ASSERT_TRUE(all);
  EXPECT_EQ(all->items.size(), 2u);
  auto found = Await(service_->ListUsers(admin, "IVY", PageRequest{}));
  ASSERT_TRUE(found);
  ASSERT_EQ(found->items.size(), 1u);
  EXPECT_EQ(found->items[0].id, user.id);

  // An admin's API key without the admin scope is not an admin.
  const CreatedApiKey chat_only = CreateKey(admin, NewApiKey{"chat only", {"chat"}, ""});
  const Principal limited = Auth(chat_only.secret);
  EXPECT_FALSE(limited.IsAdmin());
  auto limited_list = Await(service_->ListUsers(limited, "", PageRequest{}));
  ASSERT_FALSE(limited_list);
  ExpectError(limited_list.error(), ErrorCode::kPermissionDenied);
}

TEST_P(AccountServiceTest, ApiKeysAreIsolated) {
  config_.principal_cache_ttl = 1h;
  Start();
  Register("alice@example.com");
  Register("bob@example.com");
  const Principal alice = Auth(Login("alice@example.com").access_token);
  const Principal bob = Auth(Login("bob@example.com").access_token);
  const CreatedApiKey alices = CreateKey(alice);
  const CreatedApiKey bobs = CreateKey(bob);
  Auth(bobs.secret);

  auto steal = Await(service_->RevokeApiKey(alice, bobs.key.id));
  ASSERT_FALSE(steal);
  ExpectError(steal.error(), ErrorCode::kNotFound);
  auto nonsense = Await(service_->RevokeApiKey(alice, "nonsense"));
  ASSERT_FALSE(nonsense);
  ExpectError(nonsense.error(), ErrorCode::kNotFound);
  Auth(bobs.secret);

  auto listed = Await(service_->ListApiKeys(alice, PageRequest{}));
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].id, alices.key.id);

  ASSERT_TRUE(Await(service_->RevokeApiKey(bob, bobs.key.id)));
  EXPECT_EQ(AuthFails(bobs.secret), ErrorCode::kUnauthenticated);  // at once, despite the cache
  auto bobs_list = Await(service_->ListApiKeys(bob, PageRequest{}));
  ASSERT_TRUE(bobs_list);
  EXPECT_TRUE(bobs_list->items.empty());
}

TEST_P(AccountServiceTest, CreatesApiKeys) {
  Register("jay@example.com");
  const Principal session = Auth(Login("jay@example.com").access_token);
  const CreatedApiKey key = CreateKey(session, NewApiKey{"laptop", {}, ""});
  EXPECT_EQ(key.secret.size(), 52u);
  EXPECT_EQ(key.secret.rfind("sk-chatd-", 0), 0u);
  EXPECT_EQ(key.key.prefix, key.secret.substr(0, 12));
  EXPECT_EQ(key.key.name, "laptop");
  EXPECT_EQ(key.key.scopes, (std::vector<std::string>{"chat", "gateway"}));
  EXPECT_EQ(key.key.expires_at, "");
  EXPECT_EQ(key.key.created_at, FormatRfc3339(clock_.Now()));

  const Principal via_key = Auth(key.secret);
  EXPECT_TRUE(via_key.ViaApiKey());
  EXPECT_EQ(via_key.api_key_id, key.key.id);
  EXPECT_EQ(via_key.user_id, session.user_id);
  EXPECT_EQ(via_key.email, "jay@example.com");
  EXPECT_TRUE(via_key.HasScope(Scope::kChat));
  EXPECT_TRUE(via_key.HasScope(Scope::kGateway));
  EXPECT_FALSE(via_key.HasScope(Scope::kAdmin));

  const auto create = [&](const Principal& caller, NewApiKey request) {
    return Await(service_->CreateApiKey(caller, request));
  };
  auto by_key = create(via_key, NewApiKey{"x", {}, ""});
  ASSERT_FALSE(by_key);
  ExpectError(by_key.error(), ErrorCode::kPermissionDenied);
  auto no_name = create(session, NewApiKey{"", {}, ""});
  ASSERT_FALSE(no_name);
  ExpectError(no_name.error(), ErrorCode::kInvalidArgument, "name");
  auto long_name = create(session, NewApiKey{std::string(101, 'k'), {}, ""});
  ASSERT_FALSE(long_name);
  ExpectError(long_name.error(), ErrorCode::kInvalidArgument, "name");
  auto admin_scope = create(session, NewApiKey{"x", {"chat", "admin"}, ""});
  ASSERT_FALSE(admin_scope);
  ExpectError(admin_scope.error(), ErrorCode::kPermissionDenied, "scopes");
  auto unknown_scope = create(session, NewApiKey{"x", {"root"}, ""});
  ASSERT_FALSE(unknown_scope);
  ExpectError(unknown_scope.error(), ErrorCode::kInvalidArgument, "scopes");
  auto past = create(session, NewApiKey{"x", {}, FormatRfc3339(clock_.Now() - 1s)});
  ASSERT_FALSE(past);
  ExpectError(past.error(), ErrorCode::kInvalidArgument, "expires_at");
  auto garbage = create(session, NewApiKey{"x", {}, "next tuesday"});
  ASSERT_FALSE(garbage);
  ExpectError(garbage.error(), ErrorCode::kInvalidArgument, "expires_at");

  auto gateway_only = create(session, NewApiKey{"ci", {"gateway", "gateway"}, "2099-01-01T00:00:00+01:00"});
  ASSERT_TRUE(gateway_only);
  EXPECT_EQ(gateway_only->key.scopes, std::vector<std::string>{"gateway"});
  EXPECT_EQ(gateway_only->key.expires_at, "2098-12-31T23:00:00.000Z");
  const Principal gateway = Auth(gateway_only->secret);
  EXPECT_FALSE(gateway.HasScope(Scope::kChat));
  EXPECT_TRUE(gateway.HasScope(Scope::kGateway));
}

TEST_P(AccountServiceTest, ApiKeysExpire) {
  Register("kim@example.com");
  const Principal session = Auth(Login("kim@example.com").access_token);
  const CreatedApiKey key = CreateKey(session, NewApiKey{"short", {}, FormatRfc3339(clock_.Now() + 1h)});
  Auth(key.secret);
  clock_.Advance(59min);
  Auth(key.secret);
  clock_.Advance(1min);
  EXPECT_EQ(AuthFails(key.secret), ErrorCode::kUnauthenticated);  // from the cache
  clock_.Advance(1min);
  EXPECT_EQ(AuthFails(key.secret), ErrorCode::kUnauthenticated);  // from the database
}

TEST_P(AccountServiceTest, RecordsKeyUseAtMostOncePerMinute) {
  Register("lee@example.com");
  const Principal session = Auth(Login("lee@example.com").access_token);
  const CreatedApiKey key = CreateKey(session);
  const auto last_used = [&] {
    auto listed = Await(service_->ListApiKeys(session, PageRequest{}));
    EXPECT_TRUE(listed && listed->items.size() == 1);
    return listed && !listed->items.empty() ? listed->items[0].last_used_at : "?";
  };
  EXPECT_EQ(last_used(), "");
  const std::string first_use = FormatRfc3339(clock_.Now());
  Auth(key.secret);
  database_.Drain();  // the write is detached
  EXPECT_EQ(last_used(), first_use);

  clock_.Advance(10s);  // past the cache's TTL, within the minute
  Auth(key.secret);
  database_.Drain();
  EXPECT_EQ(last_used(), first_use);

  clock_.Advance(51s);
  const std::string second_use = FormatRfc3339(clock_.Now());
  Auth(key.secret);
  database_.Drain();
  EXPECT_EQ(last_used(), second_use);
}

TEST_P(AccountServiceTest, RejectsGarbageCredentials) {
  Register("max@example.com");
  const TokenPair tokens = Login("max@example.com");
  EXPECT_EQ(AuthFails(""), ErrorCode::kUnauthenticated);
  EXPECT_EQ(AuthFails("Bearer x"), ErrorCode::kUnauthenticated);
  EXPECT_EQ(AuthFails(tokens.refresh_token), ErrorCode::kUnauthenticated);
  EXPECT_EQ(AuthFails("sk-chatd-"), ErrorCode::kUnauthenticated);
  EXPECT_EQ(AuthFails("sk-chatd-" + std::string(43, 'A')), ErrorCode::kUnauthenticated);

  // A refresh-typed JWT signed with the right key is still not an access token.
  const Principal principal = Auth(tokens.access_token);
  AccessClaims claims;
  claims.sub = principal.user_id;
  claims.role = "user";
  claims.typ = "refresh";
  claims.jti = NewUuidV7();
  claims.iat = std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch()).count();
  claims.nbf = claims.iat;
  claims.exp = claims.iat + 600;
  EXPECT_EQ(AuthFails(JwtCodec(std::string(kSecret)).Sign(claims)), ErrorCode::kUnauthenticated);
  claims.typ = "access";
  Auth(JwtCodec(std::string(kSecret)).Sign(claims));  // the same token typed access passes
}

TEST_P(AccountServiceTest, LockoutAndItsExpiry) {
  config_.lockout_threshold = 3;
  config_.lockout_duration = 60s;
  Start();
  Register("ned@example.com");
  for (int i = 0; i < 2; ++i) {
    auto failed = Await(service_->Login("ned@example.com", "wrong password"));
    ASSERT_FALSE(failed);
    ExpectError(failed.error(), ErrorCode::kUnauthenticated);
  }
  // The failure that reaches the threshold is answered like any other; the lock greets
  // the attempts after it, whatever their password.
  auto locking = Await(service_->Login("ned@example.com", "wrong password"));
  ASSERT_FALSE(locking);
  ExpectError(locking.error(), ErrorCode::kUnauthenticated);
  auto refused = Await(service_->Login("ned@example.com", kPassword));
  ASSERT_FALSE(refused);
  ExpectError(refused.error(), ErrorCode::kRateLimited, "60");
  EXPECT_EQ(refused.error().message, "account is temporarily locked; try again in 60 seconds");

  clock_.Advance(20s);
  auto locked = Await(service_->Login("ned@example.com", kPassword));  // whatever the password
  ASSERT_FALSE(locked);
  ExpectError(locked.error(), ErrorCode::kRateLimited, "40");

  clock_.Advance(40s);
  Login("ned@example.com");  // the lock has expired, and the success resets the count
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(Await(service_->Login("ned@example.com", "wrong password")));
  Login("ned@example.com");
}

TEST_P(AccountServiceTest, AdminUpdateAndPasswordChangeClearALock) {
  config_.lockout_threshold = 2;
  Start();
  MakeAdmin("root@example.com");
  const Principal admin = Auth(Login("root@example.com").access_token);
  const User user = Register("oli@example.com");
  const Principal session = Auth(Login("oli@example.com").access_token);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(Await(service_->Login("oli@example.com", "wrong password")));
  auto locked = Await(service_->Login("oli@example.com", kPassword));
  ASSERT_FALSE(locked);
  ExpectError(locked.error(), ErrorCode::kRateLimited, "900");

  ASSERT_TRUE(Await(service_->AdminUpdateUser(admin, user.id, AdminUserChange{})));
  Login("oli@example.com");

  for (int i = 0; i < 2; ++i) EXPECT_FALSE(Await(service_->Login("oli@example.com", "wrong password")));
  EXPECT_FALSE(Await(service_->Login("oli@example.com", kPassword)));
  // The old session's token was not ended by the lock (a lock is about guessing).
  ASSERT_TRUE(Await(service_->ChangePassword(session, kPassword, "another fine passphrase")));
  Login("oli@example.com", "another fine passphrase");
}

TEST_P(AccountServiceTest, ProfileUpdates) {
  Register("pat@example.com", "Pat");
  Register("taken@example.com");
  const TokenPair tokens = Login("pat@example.com");
  const Principal session = Auth(tokens.access_token);
  ProfileChange change;
  change.name = "Patricia";
  change.email = " Patricia@Example.com";
  auto updated = Await(service_->UpdateProfile(session, change));
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->name, "Patricia");
  EXPECT_EQ(updated->email, "patricia@example.com");
  EXPECT_EQ(Auth(tokens.access_token).email, "patricia@example.com");

  ProfileChange taken;
  taken.email = "taken@example.com";
  auto conflict = Await(service_->UpdateProfile(session, taken));
  ASSERT_FALSE(conflict);
  ExpectError(conflict.error(), ErrorCode::kConflict, "email");
  ProfileChange bad;
  bad.email = "nope";
  auto invalid = Await(service_->UpdateProfile(session, bad));
  ASSERT_FALSE(invalid);
  ExpectError(invalid.error(), ErrorCode::kInvalidArgument, "email");
}

TEST_P(AccountServiceTest, DeleteAccount) {
  config_.principal_cache_ttl = 1h;
  Start();
  Register("quinn@example.com");
  const TokenPair tokens = Login("quinn@example.com");
  const Principal session = Auth(tokens.access_token);
  const CreatedApiKey key = CreateKey(session);
  const Principal via_key = Auth(key.secret);

  auto by_key = Await(service_->DeleteAccount(via_key));
  ASSERT_FALSE(by_key);
  ExpectError(by_key.error(), ErrorCode::kPermissionDenied);

  ASSERT_TRUE(Await(service_->DeleteAccount(session)));
  EXPECT_EQ(AuthFails(tokens.access_token), ErrorCode::kUnauthenticated);
  EXPECT_EQ(AuthFails(key.secret), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(Await(service_->Refresh(tokens.refresh_token)));
  EXPECT_FALSE(Await(service_->Login("quinn@example.com", kPassword)));
  auto me = Await(service_->GetUser(session));
  ASSERT_FALSE(me);
  ExpectError(me.error(), ErrorCode::kNotFound);
}

TEST_P(AccountServiceTest, FailedLoginsSlowDownProgressively) {
  if (GetParam() != Backend::kSqlite) GTEST_SKIP() << "timing: one backend is enough";
  config_.failed_login_delay = 40ms;
  config_.max_failed_login_delay = 60ms;
  Start();
  Register("ray@example.com");
  const auto timed_failure = [&] {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(Await(service_->Login("ray@example.com", "wrong password")));
    return std::chrono::steady_clock::now() - start;
  };
  timed_failure();
  timed_failure();
  EXPECT_GE(timed_failure(), 40ms);  // 3rd: 40 ms
  EXPECT_GE(timed_failure(), 60ms);  // 4th: 80 ms, capped at 60
}

TEST_P(AccountServiceTest, RevocationListenersHearWhatMustEndLiveSessions) {
  std::vector<SessionRevocation> heard;
  service_->OnRevocation([&heard](const SessionRevocation& revocation) { heard.push_back(revocation); });
  MakeAdmin("rev-admin@example.com");
  const Principal admin = Auth(Login("rev-admin@example.com").access_token);
  const User user = Register("rev@example.com");
  const Principal session = Auth(Login("rev@example.com").access_token);
  const CreatedApiKey key = CreateKey(session);

  ASSERT_TRUE(Await(service_->UpdateProfile(session, ProfileChange{.name = "Rev"})));
  EXPECT_TRUE(heard.empty()) << "a profile change ends nothing";

  ASSERT_TRUE(Await(service_->RevokeApiKey(session, key.key.id)));
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard.back().user_id, user.id);
  EXPECT_EQ(heard.back().api_key_id, key.key.id);

  ASSERT_TRUE(Await(service_->AdminUpdateUser(admin, user.id, AdminUserChange{.is_active = false})));
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard.back().user_id, user.id);
  EXPECT_EQ(heard.back().api_key_id, "");
  ASSERT_TRUE(Await(service_->AdminUpdateUser(admin, user.id, AdminUserChange{.is_active = true})));
  EXPECT_EQ(heard.size(), 2u) << "enabling ends nothing";

  const Principal again = Auth(Login("rev@example.com").access_token);
  ASSERT_TRUE(Await(service_->ChangePassword(again, kPassword, "a different passphrase")));
  ASSERT_EQ(heard.size(), 3u);
  EXPECT_EQ(heard.back().user_id, user.id);
}

TEST_P(AccountServiceTest, ApiKeysCarryLimits) {
  Register("limits@example.com");
  const Principal session = Auth(Login("limits@example.com").access_token);
  NewApiKey request{"limited", {}, ""};
  request.limits.allowed_models = {"demo", "gpt-4o", "demo"};
  request.limits.rpm = 60;
  request.limits.tpm = 100'000;
  request.limits.budget = Budget{5.5, BudgetUnit::kUsd, BudgetPeriod::kMonth};
  const CreatedApiKey created = CreateKey(session, request);
  // Repeated models are kept once, in order.
  EXPECT_EQ(created.key.limits.allowed_models, (std::vector<std::string>{"demo", "gpt-4o"}));
  EXPECT_EQ(created.key.limits.rpm, 60);
  EXPECT_EQ(created.key.limits.tpm, 100'000);
  ASSERT_TRUE(created.key.limits.budget);
  EXPECT_DOUBLE_EQ(created.key.limits.budget->amount, 5.5);
  EXPECT_EQ(created.key.limits.budget->unit, BudgetUnit::kUsd);
  EXPECT_EQ(created.key.limits.budget->period, BudgetPeriod::kMonth);

  auto listed = Await(service_->ListApiKeys(session, PageRequest{}));
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].limits.allowed_models, created.key.limits.allowed_models);
  EXPECT_EQ(listed->items[0].limits.tpm, 100'000);

  auto limits = Await(service_->ApiKeyLimits(created.key.id));
  ASSERT_TRUE(limits) << limits.error().message;
  ASSERT_NE(*limits, nullptr);
  EXPECT_EQ((*limits)->rpm, 60);
  EXPECT_FALSE((*limits)->Unlimited());

  // A key without limits.
  const CreatedApiKey plain = CreateKey(session);
  EXPECT_TRUE(plain.key.limits.Unlimited());
  auto none = Await(service_->ApiKeyLimits(plain.key.id));
  ASSERT_TRUE(none);
  EXPECT_TRUE((*none)->Unlimited());
}

TEST_P(AccountServiceTest, KeysCacheResponsesUnlessTheyOptOut) {
  Register("cache@example.com");
  const Principal session = Auth(Login("cache@example.com").access_token);
  const CreatedApiKey plain = CreateKey(session);
  EXPECT_TRUE(plain.key.limits.response_cache);  // on by default
  NewApiKey request{"no cache", {}, ""};
  request.limits.response_cache = false;
  const CreatedApiKey opted_out = CreateKey(session, request);
  EXPECT_FALSE(opted_out.key.limits.response_cache);
  EXPECT_TRUE(opted_out.key.limits.Unlimited());  // a policy, not a limit
  auto stored = Await(service_->ApiKeyLimits(opted_out.key.id));
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_FALSE((*stored)->response_cache);

  // Turned on again; the cached limits follow at once, and other fields stay as they were.
  KeyLimitsChange change;
  change.response_cache = true;
  auto updated = Await(service_->UpdateApiKeyLimits(session, opted_out.key.id, change));
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_TRUE(updated->limits.response_cache);
  auto after = Await(service_->ApiKeyLimits(opted_out.key.id));
  ASSERT_TRUE(after);
  EXPECT_TRUE((*after)->response_cache);
  change = KeyLimitsChange{};
  change.rpm.emplace(5);
  updated = Await(service_->UpdateApiKeyLimits(session, opted_out.key.id, change));
  ASSERT_TRUE(updated);
  EXPECT_TRUE(updated->limits.response_cache);
}

TEST_P(AccountServiceTest, KeyLimitsAreValidated) {
  Register("valid@example.com");
  const Principal session = Auth(Login("valid@example.com").access_token);
  const auto refused = [&](KeyLimits limits, std::string_view param) {
    NewApiKey request{"bad", {}, ""};
    request.limits = std::move(limits);
    auto key = Await(service_->CreateApiKey(session, request));
    ASSERT_FALSE(key) << param;
    ExpectError(key.error(), ErrorCode::kInvalidArgument, param);
  };
  refused(KeyLimits{.rpm = 0}, "rpm_limit");
  refused(KeyLimits{.rpm = kMaxRpm + 1}, "rpm_limit");
  refused(KeyLimits{.tpm = -5}, "tpm_limit");
  refused(KeyLimits{.budget = Budget{0, BudgetUnit::kUsd, BudgetPeriod::kDay}}, "budget.amount");
  refused(KeyLimits{.budget = Budget{10.5, BudgetUnit::kTokens, BudgetPeriod::kDay}}, "budget.amount");
  refused(KeyLimits{.budget = Budget{2e6, BudgetUnit::kUsd, BudgetPeriod::kDay}}, "budget.amount");
  refused(KeyLimits{.allowed_models = {""}}, "allowed_models");
  refused(KeyLimits{.allowed_models = {std::string(101, 'm')}}, "allowed_models");
  refused(KeyLimits{.allowed_models = std::vector<std::string>(101, "demo")}, "allowed_models");
  auto listed = Await(service_->ListApiKeys(session, PageRequest{}));
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->items.empty());  // nothing was stored
}

TEST_P(AccountServiceTest, OwnersAndAdminsChangeKeyLimits) {
  Register("owner@example.com");
  MakeAdmin("root@example.com");
  Register("other@example.com");
  const Principal owner = Auth(Login("owner@example.com").access_token);
  const Principal admin = Auth(Login("root@example.com").access_token);
  const Principal other = Auth(Login("other@example.com").access_token);
  NewApiKey request{"k", {}, ""};
  request.limits.rpm = 10;
  request.limits.allowed_models = {"demo"};
  const CreatedApiKey created = CreateKey(owner, request);
  const std::string id = created.key.id;

  // Cached before the change: the change must show at once on this instance.
  auto before = Await(service_->ApiKeyLimits(id));
  ASSERT_TRUE(before);
  EXPECT_EQ((*before)->rpm, 10);

  KeyLimitsChange change;
  change.rpm.emplace(20);                       // changed
  change.allowed_models.emplace(std::nullopt);  // removed
  change.budget.emplace(Budget{1000, BudgetUnit::kTokens, BudgetPeriod::kDay});
  auto updated = Await(service_->UpdateApiKeyLimits(owner, id, change));
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->limits.rpm, 20);
  EXPECT_TRUE(updated->limits.allowed_models.empty());
  EXPECT_FALSE(updated->limits.tpm);  // absent from the change: unchanged (none)
  ASSERT_TRUE(updated->limits.budget);
  EXPECT_EQ(updated->limits.budget->amount, 1000.0);
  auto after = Await(service_->ApiKeyLimits(id));
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)->rpm, 20);
  ASSERT_TRUE((*after)->budget);

  // Someone else's key is not found; an API key cannot change limits (not even its own).
  auto foreign = Await(service_->UpdateApiKeyLimits(other, id, change));
  ASSERT_FALSE(foreign);
  ExpectError(foreign.error(), ErrorCode::kNotFound);
  const Principal via_key = Auth(created.secret);
  auto by_key = Await(service_->UpdateApiKeyLimits(via_key, id, change));
  ASSERT_FALSE(by_key);
  EXPECT_EQ(by_key.error().code, ErrorCode::kPermissionDenied);
  // A bad value is refused and leaves the key as it was.
  KeyLimitsChange bad;
  bad.tpm.emplace(0);
  auto invalid = Await(service_->UpdateApiKeyLimits(owner, id, bad));
  ASSERT_FALSE(invalid);
  ExpectError(invalid.error(), ErrorCode::kInvalidArgument, "tpm_limit");

  // Admins change anyone's key; non-admins cannot use the admin path.
  KeyLimitsChange admin_change;
  admin_change.budget.emplace(std::nullopt);
  admin_change.tpm.emplace(5000);
  auto by_admin = Await(service_->AdminUpdateApiKeyLimits(admin, id, admin_change));
  ASSERT_TRUE(by_admin) << by_admin.error().message;
  EXPECT_FALSE(by_admin->limits.budget);
  EXPECT_EQ(by_admin->limits.tpm, 5000);
  EXPECT_EQ(by_admin->limits.rpm, 20);
  auto not_admin = Await(service_->AdminUpdateApiKeyLimits(owner, id, admin_change));
  ASSERT_FALSE(not_admin);
  EXPECT_EQ(not_admin.error().code, ErrorCode::kPermissionDenied);

  // A revoked key has no limits to change or look up.
  ASSERT_TRUE(Await(service_->RevokeApiKey(owner, id)));
  auto gone = Await(service_->ApiKeyLimits(id));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  auto revoked = Await(service_->AdminUpdateApiKeyLimits(admin, id, admin_change));
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code, ErrorCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Backends, AccountServiceTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::accounts
