#include "api/guard.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace chatd::api {

using accounts::Principal;
using accounts::Scope;

http::Response ErrorResponse(const Error& error) {
  Error shown = error;
  std::string retry_after;
  if (error.code == ErrorCode::kRateLimited && !error.param.empty()) {
    long long seconds = 0;
    const auto [end, ec] = std::from_chars(error.param.data(), error.param.data() + error.param.size(), seconds);
    if (ec == std::errc() && end == error.param.data() + error.param.size()) {
      retry_after = std::to_string(std::max(1LL, seconds));
      shown.param.clear();
    }
  }
  if (retry_after.empty() && error.code == ErrorCode::kRateLimited && error.retry_after.count() > 0) {
    retry_after = std::to_string(std::chrono::ceil<std::chrono::seconds>(error.retry_after).count());
  }
  http::Response response = http::Response::FromError(shown);
  if (error.code == ErrorCode::kUnauthenticated) response.AddHeader("WWW-Authenticate", "Bearer");
  if (!retry_after.empty()) response.AddHeader("Retry-After", retry_after);
  return response;
}

std::string_view Guard::Credential(const http::Request& request) {
  std::string_view authorization = request.Header("Authorization");
  if (authorization.size() > 7 && http::EqualsIgnoreCase(authorization.substr(0, 7), "Bearer ")) {
    authorization.remove_prefix(7);
    while (!authorization.empty() && authorization.front() == ' ') authorization.remove_prefix(1);
    return authorization;
  }
  return request.Header("x-api-key");
}

namespace {

Expected<void> Authorize(const Principal& principal, Access access) {
  switch (access) {
    case Access::kUser:
      if (principal.ViaApiKey() && !principal.HasScope(Scope::kChat)) {
        return MakeError(ErrorCode::kPermissionDenied, "this API key lacks the \"chat\" scope");
      }
      return {};
    case Access::kSession:
      if (principal.ViaApiKey()) {
        return MakeError(ErrorCode::kPermissionDenied, "this requires an access token, not an API key");
      }
      return {};
    case Access::kGateway:
      if (principal.ViaApiKey() && !principal.HasScope(Scope::kGateway)) {
        return MakeError(ErrorCode::kPermissionDenied, "this API key lacks the \"gateway\" scope");
      }
      return {};
    case Access::kAdmin:
      if (!principal.IsAdmin()) return MakeError(ErrorCode::kPermissionDenied, "this requires an admin");
      return {};
  }
  return MakeError(ErrorCode::kPermissionDenied, "forbidden");
}

std::string Seconds(std::chrono::milliseconds ms) {
  return std::to_string(std::max<long long>(1, (ms.count() + 999) / 1000));
}

}  // namespace

Task<std::optional<http::Response>> Guard::Limit(std::string bucket, const cache::RateLimit& limit,
                                                 std::vector<std::pair<std::string, std::string>>& headers) {
  if (!config_.enabled) co_return std::nullopt;
  const cache::RateDecision decision = co_await limiter_.Take(bucket, limit);
  const std::string limit_text = fmt::format("{}", static_cast<long long>(std::floor(decision.limit)));
  const std::string remaining = fmt::format("{}", static_cast<long long>(std::floor(decision.remaining)));
  const std::string reset = Seconds(decision.reset_after);
  if (decision.allowed) {
    headers.emplace_back("X-RateLimit-Limit", limit_text);
    headers.emplace_back("X-RateLimit-Remaining", remaining);
    headers.emplace_back("X-RateLimit-Reset", reset);
    co_return std::nullopt;
  }
  http::Response refusal = http::Response::FromError(ErrorCode::kRateLimited, "too many requests; slow down");
  refusal.AddHeader("Retry-After", Seconds(decision.retry_after));
  refusal.AddHeader("X-RateLimit-Limit", limit_text);
  refusal.AddHeader("X-RateLimit-Remaining", remaining);
  refusal.AddHeader("X-RateLimit-Reset", reset);
  co_return refusal;
}

Task<Expected<Principal>> Guard::Authenticate(std::string_view credential, Access access) {
  if (credential.empty()) {
    co_return MakeError(ErrorCode::kUnauthenticated, "missing credentials: send Authorization: Bearer <token>");
  }
  auto principal = co_await accounts_.Authenticate(credential);
  if (!principal) co_return Unexpected{std::move(principal).error()};
  if (auto allowed = Authorize(*principal, access); !allowed) co_return Unexpected{std::move(allowed).error()};
  co_return std::move(*principal);
}

http::Handler Guard::Protect(Access access, PrincipalHandler handler) {
  return [this, access, handler = std::move(handler)](http::Request& request) -> Task<http::Response> {
    auto principal = co_await Authenticate(Credential(request), access);
    if (!principal) co_return ErrorResponse(principal.error());

    // Sessions share the user's app-API bucket. An API key is limited by the limits set
    // on the key itself (none unless set; its RPM/TPM and budget apply to the gateway's
    // /v1 requests: gateway/key_limiter.hpp), so a busy integration does not throttle its
    // owner's interactive use, and vice versa.
    std::vector<std::pair<std::string, std::string>> headers;
    if (!principal->ViaApiKey()) {
      auto refusal = co_await Limit("api:" + principal->user_id, config_.api, headers);
      if (refusal) co_return std::move(*refusal);
    }
    http::Response response = co_await handler(request, *principal);
    for (auto& [name, value] : headers) response.AddHeader(std::move(name), std::move(value));
    co_return response;
  };
}

}  // namespace chatd::api
