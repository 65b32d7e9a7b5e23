#include "core/error.hpp"

namespace chatd {

namespace {
struct ErrorInfo {
  int status;
  std::string_view type;
  std::string_view name;
};

constexpr ErrorInfo Info(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return {400, "invalid_request_error", "invalid_request"};
    case ErrorCode::kUnauthenticated: return {401, "authentication_error", "unauthenticated"};
    case ErrorCode::kPermissionDenied: return {403, "permission_error", "permission_denied"};
    case ErrorCode::kNotFound: return {404, "not_found_error", "not_found"};
    case ErrorCode::kMethodNotAllowed:
      return {405, "invalid_request_error", "method_not_allowed"};
    case ErrorCode::kRequestTimeout: return {408, "invalid_request_error", "request_timeout"};
    case ErrorCode::kConflict: return {409, "conflict_error", "conflict"};
    case ErrorCode::kPayloadTooLarge:
      return {413, "invalid_request_error", "payload_too_large"};
    case ErrorCode::kUnsupportedMediaType:
      return {415, "invalid_request_error", "unsupported_media_type"};
    case ErrorCode::kRateLimited: return {429, "rate_limit_error", "rate_limit_exceeded"};
    case ErrorCode::kInternal: return {500, "server_error", "internal_error"};
    case ErrorCode::kUpstreamUnavailable: return {502, "api_error", "upstream_unavailable"};
    case ErrorCode::kUnavailable: return {503, "server_error", "service_unavailable"};
    case ErrorCode::kUpstreamTimeout: return {504, "api_error", "upstream_timeout"};
  }
  return {500, "server_error", "internal_error"};
}
}  // namespace

int HttpStatus(ErrorCode code) { return Info(code).status; }
std::string_view ErrorType(ErrorCode code) { return Info(code).type; }
std::string_view ErrorCodeName(ErrorCode code) { return Info(code).name; }

}  // namespace chatd
