// HTTP adapters for the OpenAI-compatible /v1 surface (gateway/gateway.hpp does the work).
// Errors keep OpenAI's shape and the codes its SDKs and clients look at: 401
// `invalid_api_key`, 404 `model_not_found`, 400 `invalid_request_error` with `param`,
// 429 `rate_limit_exceeded`, 5xx for upstream failures.
//
// Credentials: an API key with the "gateway" scope (Authorization: Bearer, or x-api-key),
// or an access token (a signed-in user calling as themself).
#pragma once

#include <cstddef>

#include "api/guard.hpp"
#include "gateway/gateway.hpp"
#include "http/message.hpp"

namespace chatd::api {

/// The body limit of /v1 POST routes: requests carry whole conversations, images inline.
inline constexpr std::size_t kMaxGatewayBody = 32 * 1024 * 1024;

/// The /v1 form of an error response: Response::FromError with OpenAI's codes where its
/// clients expect them (see above), Retry-After on 429 when known.
http::Response GatewayErrorResponse(const Error& error);

/// The Anthropic form of an error response (/v1/messages), with the same statuses.
http::Response AnthropicErrorResponse(const Error& error);

class GatewayApi {
 public:
  GatewayApi(Guard& guard, gateway::Gateway& gateway) : guard_(guard), gateway_(gateway) {}

  /// POST /v1/chat/completions
  Task<http::Response> ChatCompletions(http::Request& request);
  /// POST /v1/messages (Anthropic's Messages API): errors in Anthropic's shape
  /// ({"type":"error","error":{"type","message"}}), as its SDKs raise them.
  Task<http::Response> Messages(http::Request& request);
  /// POST /v1/embeddings
  Task<http::Response> Embeddings(http::Request& request);
  /// GET /v1/models
  Task<http::Response> ListModels(http::Request& request);
  /// GET /v1/models/{id} (and /v1/models/{id}/{name} for ids with a slash)
  Task<http::Response> GetModel(http::Request& request);

 private:
  Task<Expected<gateway::Caller>> Authenticate(const http::Request& request);

  Guard& guard_;
  gateway::Gateway& gateway_;
};

}  // namespace chatd::api
