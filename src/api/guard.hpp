// The gate every protected route passes through, once: resolve the credential to a
// Principal (whatever header carried it), check what the route needs, take a token from
// the caller's rate-limit bucket, then call the handler with the Principal.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "accounts/account_service.hpp"
#include "cache/rate_limiter.hpp"
#include "core/asio.hpp"
#include "http/message.hpp"
#include "http/router.hpp"

namespace chatd::api {

struct RateLimitConfig {
  bool enabled = true;
  cache::RateLimit api{10, 20};         // per user, the app API (nginx's common 10r/s burst=20)
  cache::RateLimit login{5.0 / 60, 5};  // per client IP and per account: 5 a minute
  cache::RateLimit upload{1, 5};        // per user, uploads
};

/// What a route requires of its caller.
enum class Access {
  kUser,     // any authenticated user; API keys need the "chat" scope
  kSession,  // an access token (an interactive session), not an API key
  kAdmin,    // role admin; API keys also need the "admin" scope
  kGateway,  // the OpenAI-compatible /v1 surface: API keys need the "gateway" scope;
             // access tokens (sessions) may call it too, as their user
};

using PrincipalHandler = std::function<Task<http::Response>(http::Request&, const accounts::Principal&)>;

/// The JSON error response for `error`, with WWW-Authenticate on 401 and Retry-After on
/// 429 (whose Error.param carries the seconds to wait, when known, or else
/// Error::retry_after, rounded up to whole seconds).
http::Response ErrorResponse(const Error& error);

class Guard {
 public:
  Guard(accounts::AccountService& accounts, cache::RateLimiter& limiter, RateLimitConfig config)
      : accounts_(accounts), limiter_(limiter), config_(config) {}

  /// Wraps `handler` for a route that needs `access`; its requests are rate limited per
  /// user with the app-API bucket.
  http::Handler Protect(Access access, PrincipalHandler handler);

  /// Resolves a credential (an access token or an API key) and checks it allows `access`:
  /// for callers that do not come through Protect (a WebSocket's first message).
  Task<Expected<accounts::Principal>> Authenticate(std::string_view credential, Access access);

  /// The credential of a request: `Authorization: Bearer X` or `x-api-key: X`.
  static std::string_view Credential(const http::Request& request);

  /// Takes one token from `bucket` (e.g. "login:ip:1.2.3.4") under `limit`. On refusal,
  /// the 429 to answer; otherwise nullopt, with the X-RateLimit-* headers for the
  /// response added to `headers`.
  Task<std::optional<http::Response>> Limit(std::string bucket, const cache::RateLimit& limit,
                                            std::vector<std::pair<std::string, std::string>>& headers);

  const RateLimitConfig& limits() const { return config_; }

 private:
  accounts::AccountService& accounts_;
  cache::RateLimiter& limiter_;
  RateLimitConfig config_;
};

}  // namespace chatd::api
