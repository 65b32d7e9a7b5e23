// Micro-benchmarks of the authentication hot path: every authenticated request pays one
// of these. Targets: < 5 µs median each in a release build.
//   BM_VerifyJwt                  — JwtCodec::Verify of a valid access token.
//   BM_AuthenticateCachedApiKey   — the whole AccountService::Authenticate coroutine for
//                                   an API key whose principal is cached (SQLite in
//                                   memory behind it, untouched on the warm path).
//   BM_AuthenticateAccessToken    — the same for an access token (JWT + user status cache).
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>

#include <benchmark/benchmark.h>

#include "accounts/account_service.hpp"
#include "accounts/jwt.hpp"
#include "core/ids.hpp"
#include "store/open.hpp"

namespace chatd::accounts {
namespace {

constexpr std::string_view kSecret = "bench-secret-key-bench-secret-key-0123456789";

void BM_VerifyJwt(benchmark::State& state) {
  const JwtCodec codec{std::string(kSecret)};
  const SystemTime now{std::chrono::seconds(1'800'000'000)};
  AccessClaims claims;
  claims.sub = NewUuidV7();
  claims.role = "user";
  claims.jti = NewUuidV7();
  claims.ver = 1;
  claims.iat = 1'800'000'000;
  claims.nbf = claims.iat;
  claims.exp = claims.iat + 1800;
  const std::string token = codec.Sign(claims);
  for (auto _ : state) {
    auto verified = codec.Verify(token, now);
    benchmark::DoNotOptimize(verified);
  }
}
BENCHMARK(BM_VerifyJwt);

// A service over an in-memory SQLite with one user, one API key and one session.
struct Fixture {
  Fixture() {
    store::DatabaseConfig db_config;
    db_config.url = "sqlite::memory:";
    auto opened = store::OpenDatabase(db_config);
    if (!opened) throw std::runtime_error(opened.error().message);
    db = std::move(*opened);
    Run(db->Migrate());
    AccountsConfig config;
    config.secret_key = std::string(kSecret);
    config.password_hash = PasswordHashParams{1, 8192};
    service = std::make_unique<AccountService>(config, *db, pool, clock);
    Run(service->Register("bench@example.com", "a bench passphrase", "Bench"));
    access_token = Run(service->Login("bench@example.com", "a bench passphrase")).access_token;
    const Principal session = Run(service->Authenticate(access_token));
    api_key = Run(service->CreateApiKey(session, NewApiKey{"bench", {}, ""})).secret;
    Run(service->Authenticate(api_key));  // warm the caches
  }
  ~Fixture() {
    io.restart();
    io.run();
    service.reset();
    db->Close();
  }

  template <typename T>
  T Run(Task<Expected<T>> task) {
    std::optional<Expected<T>> result;
    asio::co_spawn(
        io, [&]() -> Task<void> { result.emplace(co_await std::move(task)); }, asio::detached);
    io.restart();
    io.run();
    if (!result || !*result) throw std::runtime_error(result ? (*result).error().message : "did not finish");
    return std::move(**result);
  }

  // Runs the benchmark loop inside one coroutine, so each iteration measures exactly one
  // co_await of Authenticate (no co_spawn or io_context round trip per call).
  void Loop(benchmark::State& state, const std::string& credential) {
    asio::co_spawn(
        io,
        [&]() -> Task<void> {
          for (auto _ : state) {
            auto principal = co_await service->Authenticate(credential);
            if (!principal) state.SkipWithError("authentication failed");
            benchmark::DoNotOptimize(principal);
          }
        },
        asio::detached);
    io.restart();
    io.run();
  }

  asio::io_context io{1};
  ManualClock clock;  // frozen: cache entries stay warm for the whole run
  BlockingPool pool{1, 16, "bench-hash"};
  std::unique_ptr<store::Database> db;
  std::unique_ptr<AccountService> service;
  std::string access_token;
  std::string api_key;
};

void BM_AuthenticateCachedApiKey(benchmark::State& state) {
  Fixture fixture;
  fixture.Loop(state, fixture.api_key);
}
BENCHMARK(BM_AuthenticateCachedApiKey);

void BM_AuthenticateAccessToken(benchmark::State& state) {
  Fixture fixture;
  fixture.Loop(state, fixture.access_token);
}
BENCHMARK(BM_AuthenticateAccessToken);

}  // namespace
}  // namespace chatd::accounts

BENCHMARK_MAIN();
