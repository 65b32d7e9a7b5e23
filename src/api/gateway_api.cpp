#include "api/gateway_api.hpp"

#include <string>
#include <utility>
#include <vector>

#include "core/json.hpp"
#include "gateway/anthropic.hpp"

namespace chatd::api {
namespace {

// The request's response as the gateway sees it: SSE on the request's stream, and the
// headers the gateway adds to whichever response ends the call.
class HttpChannel final : public gateway::ClientChannel {
 public:
  explicit HttpChannel(http::Request& request) : request_(request) {}

  Task<bool> BeginEvents() override {
    http::Response head(200, {}, "text/event-stream; charset=utf-8");
    head.AddHeader("Cache-Control", "no-cache");
    head.AddHeader("X-Accel-Buffering", "no");  // nginx must not buffer the stream
    http::Response decorated = Decorate(std::move(head));
    co_return co_await request_.stream->Begin(std::move(decorated));
  }
  Task<bool> Write(std::string_view bytes) override { co_return co_await request_.stream->Write(bytes); }
  void WatchClient(std::function<void()> on_gone) override { request_.stream->WatchClient(std::move(on_gone)); }
  void AddHeader(std::string name, std::string value) override {
    headers_.emplace_back(std::move(name), std::move(value));
  }

  /// `response` with the gateway's headers.
  http::Response Decorate(http::Response response) const {
    for (const auto& [name, value] : headers_) response.AddHeader(name, value);
    return response;
  }

 private:
  http::Request& request_;
  std::vector<std::pair<std::string, std::string>> headers_;
};

Expected<void> RequireJson(const http::Request& request) {
  const std::string type = request.ContentType();
  if (type == "application/json" || (type.starts_with("application/") && type.ends_with("+json"))) return {};
  return MakeError(ErrorCode::kUnsupportedMediaType,
                   "the request body must be JSON (Content-Type: application/json)" +
                       (type.empty() ? std::string() : ", not " + type));
}

}  // namespace

http::Response GatewayErrorResponse(const Error& error) {
  std::string_view code = ErrorCodeName(error.code);
  std::string_view type = ErrorType(error.code);
  if (error.code == ErrorCode::kUnauthenticated) {
    code = "invalid_api_key";
    type = "invalid_request_error";
  } else if (error.code == ErrorCode::kNotFound && error.param == "model") {
    code = "model_not_found";
    type = "invalid_request_error";
  }
  JsonWriter json;
  json.BeginObject().Key("error").BeginObject();
  json.Field("message", error.message).Field("type", type).Key("param");
  if (error.param.empty()) json.Null(); else json.String(error.param);
  json.Field("code", code).EndObject().EndObject();
  http::Response response = http::Response::Json(HttpStatus(error.code), std::move(json).str());
  if (error.code == ErrorCode::kUnauthenticated) response.AddHeader("WWW-Authenticate", "Bearer");
  if (error.code == ErrorCode::kRateLimited && error.retry_after.count() > 0) {
    response.AddHeader("Retry-After", std::to_string(std::max<long long>(1, (error.retry_after.count() + 999) / 1000)));
  }
  return response;
}

http::Response AnthropicErrorResponse(const Error& error) {
  http::Response response = http::Response::Json(HttpStatus(error.code), gateway::AnthropicErrorBody(error));
  if (error.code == ErrorCode::kRateLimited && error.retry_after.count() > 0) {
    response.AddHeader("Retry-After", std::to_string(std::max<long long>(1, (error.retry_after.count() + 999) / 1000)));
  }
  return response;
}

Task<Expected<gateway::Caller>> GatewayApi::Authenticate(const http::Request& request) {
  auto principal = co_await guard_.Authenticate(Guard::Credential(request), Access::kGateway);
  if (!principal) co_return Unexpected{std::move(principal).error()};
  if (!principal->ViaApiKey()) {
    // A session shares its user's app-API bucket, as on every route (Guard::Protect); API
    // keys answer to their own limits, in gateway::Admission.
    std::vector<std::pair<std::string, std::string>> headers;
    const std::string bucket = "api:" + principal->user_id;
    auto refusal = co_await guard_.Limit(bucket, guard_.limits().api, headers);
    if (refusal) co_return MakeError(ErrorCode::kRateLimited, "too many requests; slow down");
  }
  co_return gateway::Caller{.user_id = std::move(principal->user_id), .api_key_id = std::move(principal->api_key_id)};
}

Task<http::Response> GatewayApi::ChatCompletions(http::Request& request) {
  auto caller = co_await Authenticate(request);
  if (!caller) co_return GatewayErrorResponse(caller.error());
  if (auto json = RequireJson(request); !json) co_return GatewayErrorResponse(json.error());
  HttpChannel channel(request);
  auto outcome = co_await gateway_.ChatCompletions(*caller, request.body, channel);
  if (!outcome) co_return channel.Decorate(GatewayErrorResponse(outcome.error()));
  if (outcome->streamed) co_return http::Response{};  // written to the stream already
  co_return channel.Decorate(http::Response::Json(200, std::move(outcome->body)));
}

Task<http::Response> GatewayApi::Messages(http::Request& request) {
  auto caller = co_await Authenticate(request);
  if (!caller) co_return AnthropicErrorResponse(caller.error());
  if (auto json = RequireJson(request); !json) co_return AnthropicErrorResponse(json.error());
  HttpChannel channel(request);
  auto outcome = co_await gateway_.Messages(*caller, request.body, channel);
  if (!outcome) co_return AnthropicErrorResponse(outcome.error());
  if (outcome->streamed) co_return http::Response{};  // written to the stream already
  co_return http::Response::Json(200, std::move(outcome->body));
}

Task<http::Response> GatewayApi::Embeddings(http::Request& request) {
  auto caller = co_await Authenticate(request);
  if (!caller) co_return GatewayErrorResponse(caller.error());
  if (auto json = RequireJson(request); !json) co_return GatewayErrorResponse(json.error());
  HttpChannel channel(request);
  auto body = co_await gateway_.Embeddings(*caller, request.body, channel);
  if (!body) co_return GatewayErrorResponse(body.error());
  co_return http::Response::Json(200, std::move(*body));
}

Task<http::Response> GatewayApi::ListModels(http::Request& request) {
  auto caller = co_await Authenticate(request);
  if (!caller) co_return GatewayErrorResponse(caller.error());
  co_return http::Response::Json(200, gateway_.ListModels());
}

Task<http::Response> GatewayApi::GetModel(http::Request& request) {
  auto caller = co_await Authenticate(request);
  if (!caller) co_return GatewayErrorResponse(caller.error());
  std::string id(request.Param("id"));
  if (const std::string_view name = request.Param("name"); !name.empty()) (id += '/') += name;  // owner/name
  auto model = gateway_.GetModel(id);
  if (!model) co_return GatewayErrorResponse(model.error());
  co_return http::Response::Json(200, std::move(*model));
}

}  // namespace chatd::api
