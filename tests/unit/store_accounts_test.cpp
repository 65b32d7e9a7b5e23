// store::AccountsRepository on every backend (see accounts_test_database.hpp).
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "accounts_test_database.hpp"
#include "core/ids.hpp"
#include "store/accounts_repository.hpp"

namespace chatd::store {
namespace {

using chatd::testing::Backend;

class AccountsRepositoryTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!database_.Open(GetParam())) GTEST_SKIP() << "set CHATD_TEST_DATABASE_URL to run the PostgreSQL variant";
    repo_.emplace(database_.db());
  }

  template <typename T>
  T Await(Task<T> task) {
    return database_.Await(std::move(task));
  }

  UserRecord AddUser(const std::string& email, const std::string& name = "",
                     const std::string& created_at = "2027-01-01T00:00:00.000Z") {
    UserRecord user;
    user.id = NewUuidV7();
    user.email = email;
    user.password_hash = "$argon2id$dummy";
    user.name = name;
    user.created_at = created_at;
    user.updated_at = created_at;
    auto inserted = Await(repo_->InsertUser(user));
    EXPECT_TRUE(inserted) << inserted.error().message;
    return user;
  }

  RefreshTokenRecord Token(const UserRecord& user, const std::string& hash, const std::string& family,
                           const std::string& expires_at = "2027-02-01T00:00:00.000Z") {
    RefreshTokenRecord token;
    token.id = NewUuidV7();
    token.user_id = user.id;
    token.family_id = family;
    token.token_hash = hash;
    token.expires_at = expires_at;
    token.created_at = "2027-01-01T00:00:00.000Z";
    return token;
  }

  ApiKeyRecord Key(const UserRecord& user, const std::string& hash, const std::string& created_at) {
    ApiKeyRecord key;
    key.id = NewUuidV7();
    key.user_id = user.id;
    key.name = "key " + hash;
    key.key_hash = hash;
    key.prefix = "sk-chatd-abc";
    key.scopes = R"(["chat"])";
    key.created_at = created_at;
    auto inserted = Await(repo_->InsertApiKey(key));
    EXPECT_TRUE(inserted) << inserted.error().message;
    return key;
  }

  std::int64_t Count(const std::string& sql) {
    auto rows = Await(database_.db().Execute(sql));
    EXPECT_TRUE(rows) << rows.error().message;
    return rows ? rows->Int(0, "n") : -1;
  }

  chatd::testing::TestDatabase database_;
  std::optional<AccountsRepository> repo_;
};

constexpr std::string_view kNow = "2027-01-15T00:00:00.000Z";

TEST_P(AccountsRepositoryTest, InsertsAndFindsUsers) {
  const UserRecord alice = AddUser("alice@example.com", "Alice");
  auto by_email = Await(repo_->FindUserByEmail("alice@example.com"));
  ASSERT_TRUE(by_email && by_email->has_value());
  const UserRecord& found = **by_email;
  EXPECT_EQ(found.id, alice.id);
  EXPECT_EQ(found.name, "Alice");
  EXPECT_EQ(found.role, "user");
  EXPECT_TRUE(found.is_active);
  EXPECT_EQ(found.token_version, 0);
  EXPECT_EQ(found.failed_logins, 0);
  EXPECT_EQ(found.locked_until, "");
  EXPECT_EQ(found.created_at, "2027-01-01T00:00:00.000Z");
  auto missing = Await(repo_->FindUserById(NewUuidV7()));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());

  UserRecord duplicate = alice;
  duplicate.id = NewUuidV7();
  auto conflict = Await(repo_->InsertUser(duplicate));
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, ErrorCode::kConflict);
  EXPECT_EQ(conflict.error().param, "email");
}

TEST_P(AccountsRepositoryTest, FailedLoginsLockAtTheThreshold) {
  const UserRecord user = AddUser("bob@example.com");
  const std::string lock = "2027-01-15T00:15:00.000Z";
  for (int i = 1; i <= 2; ++i) {
    auto failure = Await(repo_->RecordFailedLogin(user.id, 3, lock));
    ASSERT_TRUE(failure) << failure.error().message;
    EXPECT_EQ(failure->failed_logins, i);
    EXPECT_EQ(failure->locked_until, "");
  }
  auto locked = Await(repo_->RecordFailedLogin(user.id, 3, lock));
  ASSERT_TRUE(locked);
  EXPECT_EQ(locked->failed_logins, 0);
  EXPECT_EQ(locked->locked_until, lock);

  ASSERT_TRUE(Await(repo_->RecordSuccessfulLogin(user.id, kNow)));
  auto after = Await(repo_->FindUserById(user.id));
  ASSERT_TRUE(after && after->has_value());
  EXPECT_EQ((*after)->locked_until, "");
  EXPECT_EQ((*after)->failed_logins, 0);
  EXPECT_EQ((*after)->last_login_at, kNow);
}

TEST_P(AccountsRepositoryTest, RotationSpendsOnceAndReuseRevokesTheFamily) {
  const UserRecord user = AddUser("carol@example.com");
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "h1", "family-1"))));
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "other", "family-2"))));

  auto rotated = Await(repo_->RotateRefreshToken("h1", Token(user, "h2", "ignored"), kNow));
  ASSERT_TRUE(rotated) << rotated.error().message;
  EXPECT_EQ(rotated->outcome, RotateOutcome::kRotated);
  EXPECT_EQ(rotated->user_id, user.id);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE token_hash = 'h2' AND family_id = 'family-1'"), 1);

  // h1 again: reuse. The whole family (h1, h2) is revoked, the other family is not.
  auto reused = Await(repo_->RotateRefreshToken("h1", Token(user, "h3", "x"), kNow));
  ASSERT_TRUE(reused);
  EXPECT_EQ(reused->outcome, RotateOutcome::kReused);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE token_hash = 'h3'"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE family_id = 'family-1' AND revoked_at IS NULL"), 0);
  auto descendant = Await(repo_->RotateRefreshToken("h2", Token(user, "h4", "x"), kNow));
  ASSERT_TRUE(descendant);
  EXPECT_EQ(descendant->outcome, RotateOutcome::kReused);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE family_id = 'family-2' AND revoked_at IS NULL"), 1);

  auto unknown = Await(repo_->RotateRefreshToken("nope", Token(user, "h5", "x"), kNow));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->outcome, RotateOutcome::kNotFound);
}

TEST_P(AccountsRepositoryTest, ConcurrentRotationsOfOneTokenHaveOneWinner) {
  const UserRecord user = AddUser("cy@example.com");
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "shared", "family"))));
  std::vector<RotateOutcome> outcomes;
  const auto rotate = [&](std::string next_hash) -> Task<void> {
    auto result = co_await repo_->RotateRefreshToken("shared", Token(user, next_hash, "x"), kNow);
    EXPECT_TRUE(result) << result.error().message;
    if (result) outcomes.push_back(result->outcome);
  };
  asio::co_spawn(database_.io(), rotate("n1"), asio::detached);
  asio::co_spawn(database_.io(), rotate("n2"), asio::detached);
  database_.Drain();
  ASSERT_EQ(outcomes.size(), 2u);
  std::sort(outcomes.begin(), outcomes.end());
  EXPECT_EQ(outcomes, (std::vector<RotateOutcome>{RotateOutcome::kRotated, RotateOutcome::kReused}));
  // The loser's reuse ended the family, the winner's new token included.
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE revoked_at IS NULL"), 0);
}

TEST_P(AccountsRepositoryTest, ExpiredRefreshTokensDoNotRotate) {
  const UserRecord user = AddUser("dan@example.com");
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "old", "f", "2027-01-14T23:59:59.999Z"))));
  auto expired = Await(repo_->RotateRefreshToken("old", Token(user, "new", "x"), kNow));
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->outcome, RotateOutcome::kExpired);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens"), 1);
}

TEST_P(AccountsRepositoryTest, LogoutRevokesTheFamily) {
  const UserRecord user = AddUser("erin@example.com");
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "a", "f1"))));
  ASSERT_TRUE(Await(repo_->RotateRefreshToken("a", Token(user, "b", "x"), kNow)));
  ASSERT_TRUE(Await(repo_->RevokeRefreshFamily("b", kNow)));
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE revoked_at IS NULL"), 0);
  ASSERT_TRUE(Await(repo_->RevokeRefreshFamily("unknown", kNow)));
}

TEST_P(AccountsRepositoryTest, ChangePasswordBumpsVersionAndRevokesTokens) {
  const UserRecord user = AddUser("fay@example.com");
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "t1", "f1"))));
  ASSERT_TRUE(Await(repo_->RecordFailedLogin(user.id, 1, "2027-01-15T00:15:00.000Z")));
  auto changed = Await(repo_->ChangePassword(user.id, "$argon2id$new", kNow));
  ASSERT_TRUE(changed && *changed);
  auto after = Await(repo_->FindUserById(user.id));
  ASSERT_TRUE(after && after->has_value());
  EXPECT_EQ((*after)->password_hash, "$argon2id$new");
  EXPECT_EQ((*after)->token_version, 1);
  EXPECT_EQ((*after)->locked_until, "");
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE revoked_at IS NULL"), 0);
  auto missing = Await(repo_->ChangePassword(NewUuidV7(), "$argon2id$new", kNow));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST_P(AccountsRepositoryTest, AdminUpdateBumpsVersionOnlyOnRealChanges) {
  const UserRecord user = AddUser("gus@example.com");
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "t1", "f1"))));
  UserAdminUpdate same;
  same.is_active = true;
  same.role = "user";
  auto unchanged = Await(repo_->AdminUpdateUser(user.id, same, kNow));
  ASSERT_TRUE(unchanged && unchanged->has_value()) << (unchanged ? "" : unchanged.error().message);
  EXPECT_EQ((*unchanged)->token_version, 0);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE revoked_at IS NULL"), 1);

  UserAdminUpdate disable;
  disable.is_active = false;
  auto disabled = Await(repo_->AdminUpdateUser(user.id, disable, kNow));
  ASSERT_TRUE(disabled && disabled->has_value());
  EXPECT_FALSE((*disabled)->is_active);
  EXPECT_EQ((*disabled)->role, "user");
  EXPECT_EQ((*disabled)->token_version, 1);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE revoked_at IS NULL"), 0);

  UserAdminUpdate promote;
  promote.role = "admin";
  auto promoted = Await(repo_->AdminUpdateUser(user.id, promote, kNow));
  ASSERT_TRUE(promoted && promoted->has_value());
  EXPECT_EQ((*promoted)->role, "admin");
  EXPECT_FALSE((*promoted)->is_active);
  EXPECT_EQ((*promoted)->token_version, 2);

  auto missing = Await(repo_->AdminUpdateUser(NewUuidV7(), promote, kNow));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(AccountsRepositoryTest, ApiKeysAreIsolatedByUser) {
  const UserRecord alice = AddUser("alice@example.com");
  const UserRecord bob = AddUser("bob@example.com");
  const ApiKeyRecord alices = Key(alice, "ha", "2027-01-01T00:00:00.000Z");
  const ApiKeyRecord bobs = Key(bob, "hb", "2027-01-01T00:00:00.000Z");

  auto steal = Await(repo_->RevokeApiKey(alice.id, bobs.id, kNow));
  ASSERT_TRUE(steal);
  EXPECT_FALSE(*steal);
  auto listed = Await(repo_->ListApiKeys(alice.id, PageRequest{}));
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].id, alices.id);

  auto found = Await(repo_->FindApiKeyByHash("hb"));
  ASSERT_TRUE(found && found->has_value());
  EXPECT_EQ((*found)->key.user_id, bob.id);
  EXPECT_EQ((*found)->email, "bob@example.com");
  EXPECT_EQ((*found)->role, "user");
  EXPECT_TRUE((*found)->is_active);
  EXPECT_EQ((*found)->key.scopes, R"(["chat"])");

  auto revoked = Await(repo_->RevokeApiKey(bob.id, bobs.id, kNow));
  ASSERT_TRUE(revoked && *revoked);
  auto again = Await(repo_->RevokeApiKey(bob.id, bobs.id, kNow));
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto gone = Await(repo_->FindApiKeyByHash("hb"));
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());

  ASSERT_TRUE(Await(repo_->TouchApiKey(alice.id, alices.id, kNow)));
  ASSERT_TRUE(Await(repo_->TouchApiKey(bob.id, alices.id, "2030-01-01T00:00:00.000Z")));  // not bob's: no-op
  auto touched = Await(repo_->FindApiKeyByHash("ha"));
  ASSERT_TRUE(touched && touched->has_value());
  EXPECT_EQ((*touched)->key.last_used_at, kNow);
}

TEST_P(AccountsRepositoryTest, ApiKeysPageNewestFirst) {
  const UserRecord user = AddUser("hal@example.com");
  std::vector<std::string> ids;  // oldest first
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Key(user, "h" + std::to_string(i), "2027-01-01T00:00:0" + std::to_string(i) + ".000Z").id);
  }
  // Two more in the same millisecond: the id breaks the tie.
  ids.push_back(Key(user, "h5", "2027-01-01T00:00:09.000Z").id);
  ids.push_back(Key(user, "h6", "2027-01-01T00:00:09.000Z").id);
  std::sort(ids.end() - 2, ids.end());

  std::vector<std::string> seen;
  PageRequest page{2, ""};
  for (int guard = 0; guard < 10; ++guard) {
    auto listed = Await(repo_->ListApiKeys(user.id, page));
    ASSERT_TRUE(listed) << listed.error().message;
    for (const auto& key : listed->items) seen.push_back(key.id);
    if (listed->next_cursor.empty()) break;
    EXPECT_EQ(listed->items.size(), 2u);
    page.cursor = listed->next_cursor;
  }
  std::vector<std::string> expected(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, expected);

  auto bad = Await(repo_->ListApiKeys(user.id, PageRequest{2, "not a cursor!"}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().param, "cursor");
  auto forged = Await(repo_->ListApiKeys(user.id, PageRequest{2, "eHx5"}));  // "x|y"
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().param, "cursor");
}

TEST_P(AccountsRepositoryTest, UsersPageOldestFirstWithEscapedSearch) {
  AddUser("percent@example.com", "100% Real", "2027-01-01T00:00:01.000Z");
  AddUser("thousand@example.com", "1000 real", "2027-01-01T00:00:02.000Z");
  AddUser("under@example.com", "A_B", "2027-01-01T00:00:03.000Z");
  AddUser("axb@example.com", "AxB", "2027-01-01T00:00:04.000Z");
  AddUser("alice@wonder.land", "Alice", "2027-01-01T00:00:05.000Z");

  auto names = [&](std::string_view query, std::size_t limit = 100) {
    std::vector<std::string> out;
    PageRequest page{limit, ""};
    for (int guard = 0; guard < 10; ++guard) {
      auto listed = Await(repo_->ListUsers(query, page));
      EXPECT_TRUE(listed) << listed.error().message;
      if (!listed) break;
      for (const auto& user : listed->items) out.push_back(user.name);
      if (listed->next_cursor.empty()) break;
      page.cursor = listed->next_cursor;
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names(""), (V{"100% Real", "1000 real", "A_B", "AxB", "Alice"}));
  EXPECT_EQ(names("", 2), (V{"100% Real", "1000 real", "A_B", "AxB", "Alice"}));
  EXPECT_EQ(names("%"), (V{"100% Real"}));
  EXPECT_EQ(names("_"), (V{"A_B"}));
  EXPECT_EQ(names("REAL"), (V{"100% Real", "1000 real"}));
  EXPECT_EQ(names("wonder"), (V{"Alice"}));  // matches the email
  EXPECT_EQ(names("a_b", 1), (V{"A_B"}));
  EXPECT_EQ(names("nobody"), V{});
}

TEST_P(AccountsRepositoryTest, DeletingAUserCascades) {
  const UserRecord user = AddUser("ivy@example.com");
  const UserRecord other = AddUser("jay@example.com");
  ASSERT_TRUE(Await(repo_->InsertRefreshToken(Token(user, "t1", "f1"))));
  Key(user, "k1", "2027-01-01T00:00:00.000Z");
  Key(other, "k2", "2027-01-01T00:00:00.000Z");
  auto deleted = Await(repo_->DeleteUser(user.id));
  ASSERT_TRUE(deleted && *deleted);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM refresh_tokens"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) AS n FROM api_keys"), 1);
  auto again = Await(repo_->DeleteUser(user.id));
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_P(AccountsRepositoryTest, UpdateProfile) {
  const UserRecord user = AddUser("kim@example.com", "Kim");
  AddUser("taken@example.com");
  auto renamed = Await(repo_->UpdateProfile(user.id, std::string("Kimberly"), std::nullopt, kNow));
  ASSERT_TRUE(renamed && renamed->has_value());
  EXPECT_EQ((*renamed)->name, "Kimberly");
  EXPECT_EQ((*renamed)->email, "kim@example.com");
  EXPECT_EQ((*renamed)->updated_at, kNow);
  auto conflict = Await(repo_->UpdateProfile(user.id, std::nullopt, std::string("taken@example.com"), kNow));
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, ErrorCode::kConflict);
  auto missing = Await(repo_->UpdateProfile(NewUuidV7(), std::string("x"), std::nullopt, kNow));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(AccountsRepositoryTest, StoresKeyLimits) {
  const UserRecord alice = AddUser("limits@example.com");
  const UserRecord bob = AddUser("limits-bob@example.com");
  ApiKeyRecord key = Key(alice, "limits-hash", "2027-01-02T00:00:00.000Z");
  auto plain = Await(repo_->FindLiveApiKey(key.id));
  ASSERT_TRUE(plain && plain->has_value());
  EXPECT_EQ((*plain)->limits.allowed_models, "");
  EXPECT_FALSE((*plain)->limits.rpm_limit);
  EXPECT_FALSE((*plain)->limits.budget_amount);

  ApiKeyLimitsRecord limits;
  limits.allowed_models = R"(["demo"])";
  limits.rpm_limit = 60;
  limits.tpm_limit = 5'000'000'000;  // beyond 32 bits
  limits.budget_amount = 12.25;
  limits.budget_unit = "usd";
  limits.budget_period = "day";
  // Another user cannot change it; the owner and an admin (no owner given) can.
  auto foreign = Await(repo_->UpdateApiKeyLimits(bob.id, key.id, limits));
  ASSERT_TRUE(foreign);
  EXPECT_FALSE(foreign->has_value());
  auto updated = Await(repo_->UpdateApiKeyLimits(alice.id, key.id, limits));
  ASSERT_TRUE(updated) << updated.error().message;
  ASSERT_TRUE(updated->has_value());
  const ApiKeyLimitsRecord& stored = (*updated)->limits;
  EXPECT_EQ(stored.allowed_models, R"(["demo"])");
  EXPECT_EQ(stored.rpm_limit, 60);
  EXPECT_EQ(stored.tpm_limit, 5'000'000'000);
  EXPECT_EQ(stored.budget_amount, 12.25);
  EXPECT_EQ(stored.budget_unit, "usd");
  EXPECT_EQ(stored.budget_period, "day");
  auto by_hash = Await(repo_->FindApiKeyByHash("limits-hash"));
  ASSERT_TRUE(by_hash && by_hash->has_value());
  EXPECT_EQ((*by_hash)->key.limits.tpm_limit, 5'000'000'000);

  ApiKeyLimitsRecord cleared;
  auto by_admin = Await(repo_->UpdateApiKeyLimits("", key.id, cleared));
  ASSERT_TRUE(by_admin && by_admin->has_value());
  EXPECT_FALSE((*by_admin)->limits.rpm_limit);
  EXPECT_EQ((*by_admin)->limits.budget_unit, "");

  // The budget's unit and period are constrained in the schema too.
  auto bad = Await(database_.db().Execute("UPDATE api_keys SET budget_unit = 'eur' WHERE id = $1", {key.id}));
  EXPECT_FALSE(bad);

  ASSERT_TRUE(Await(repo_->RevokeApiKey(alice.id, key.id, kNow)));
  auto revoked = Await(repo_->FindLiveApiKey(key.id));
  ASSERT_TRUE(revoked);
  EXPECT_FALSE(revoked->has_value());
  auto late = Await(repo_->UpdateApiKeyLimits("", key.id, limits));
  ASSERT_TRUE(late);
  EXPECT_FALSE(late->has_value());
}

INSTANTIATE_TEST_SUITE_P(Backends, AccountsRepositoryTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         chatd::testing::BackendName);

}  // namespace
}  // namespace chatd::store
