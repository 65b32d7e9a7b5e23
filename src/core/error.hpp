// One error vocabulary for the whole program. Outcomes a caller must branch on travel as
// Expected<T> carrying an Error; bugs throw and are caught once per request.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace chatd {

enum class ErrorCode {
  kInvalidArgument,       // 400: the request is malformed or a field is invalid
  kUnauthenticated,       // 401
  kPermissionDenied,      // 403
  kNotFound,              // 404
  kMethodNotAllowed,      // 405
  kRequestTimeout,        // 408
  kConflict,              // 409
  kPayloadTooLarge,       // 413
  kUnsupportedMediaType,  // 415
  kRateLimited,           // 429
  kInternal,              // 500
  kUpstreamUnavailable,   // 502: a provider or dependency answered badly or not at all
  kUnavailable,           // 503: we are overloaded, draining or a dependency is down
  kUpstreamTimeout,       // 504
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string param;  // the offending field, when there is one (OpenAI's "param")
  /// How long the peer asked us to wait before trying again (an upstream's Retry-After);
  /// 0 when it did not say.
  std::chrono::milliseconds retry_after{0};
};

/// HTTP status for an error code: the single table that maps the two.
int HttpStatus(ErrorCode code);
/// OpenAI-style error "type", e.g. "invalid_request_error".
std::string_view ErrorType(ErrorCode code);
/// Stable machine-readable code, e.g. "not_found".
std::string_view ErrorCodeName(ErrorCode code);

}  // namespace chatd
