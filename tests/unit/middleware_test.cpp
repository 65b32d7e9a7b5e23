#include "http/middleware.hpp"

#include <gtest/gtest.h>

namespace chatd::http {
namespace {

Request WithHeaders(Method method, std::vector<std::pair<std::string_view, std::string_view>> headers) {
  Request request;
  request.method = method;
  request.headers = std::move(headers);
  return request;
}

TEST(AllowedHosts, AcceptsListedHostsWithAnyPortAndWildcardSubdomains) {
  auto hosts = MakeAllowedHosts({"localhost", "*.example.com"});
  auto a = WithHeaders(Method::kGet, {{"Host", "localhost:8000"}});
  auto b = WithHeaders(Method::kGet, {{"Host", "api.example.com"}});
  auto c = WithHeaders(Method::kGet, {{"Host", "evil.com"}});
  auto d = WithHeaders(Method::kGet, {{"Host", "example.com.evil.com"}});
  EXPECT_FALSE(hosts->OnRequest(a));
  EXPECT_FALSE(hosts->OnRequest(b));
  auto rejected = hosts->OnRequest(c);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->status, 400);
  EXPECT_TRUE(hosts->OnRequest(d));
}

TEST(Cors, PreflightFromAllowedOriginGets204WithAllowHeaders) {
  auto cors = MakeCors({"https://app.example.com"});
  auto request = WithHeaders(Method::kOptions, {{"Origin", "https://app.example.com"},
                                                {"Access-Control-Request-Method", "POST"},
                                                {"Access-Control-Request-Headers", "authorization,content-type"}});
  auto response = cors->OnRequest(request);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 204);
  EXPECT_NE(response->Header("Access-Control-Allow-Methods").find("POST"), std::string_view::npos);
  EXPECT_EQ(response->Header("Access-Control-Allow-Headers"), "authorization,content-type");
  cors->OnResponse(request, *response);
  EXPECT_EQ(response->Header("Access-Control-Allow-Origin"), "https://app.example.com");
}

TEST(Cors, OtherOriginsGetNoCorsHeadersAndPreflightIsRefused) {
  auto cors = MakeCors({"https://app.example.com"});
  auto simple = WithHeaders(Method::kGet, {{"Origin", "https://evil.example"}});
  Response response = Response::Json(200, "{}");
  EXPECT_FALSE(cors->OnRequest(simple));
  cors->OnResponse(simple, response);
  EXPECT_EQ(response.Header("Access-Control-Allow-Origin"), "");
  auto preflight = WithHeaders(Method::kOptions, {{"Origin", "https://evil.example"},
                                                  {"Access-Control-Request-Method", "POST"}});
  auto refused = cors->OnRequest(preflight);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403);
}

TEST(SecurityHeaders, AreAddedToEveryResponse) {
  auto headers = MakeSecurityHeaders();
  Request request;
  Response response = Response::NoContent();
  headers->OnResponse(request, response);
  EXPECT_EQ(response.Header("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(response.Header("X-Frame-Options"), "DENY");
  EXPECT_EQ(response.Header("Referrer-Policy"), "no-referrer");
}

TEST(Response, ErrorsHaveOpenAiShape) {
  auto response = Response::FromError(ErrorCode::kInvalidArgument, "bad \"x\"", "messages");
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(response.body,
            R"({"error":{"message":"bad \"x\"","type":"invalid_request_error","code":"invalid_request","param":"messages"}})");
}

}  // namespace
}  // namespace chatd::http
