#include "http/router.hpp"

#include <gtest/gtest.h>

namespace chatd::http {
namespace {

Handler Noop() {
  return [](Request&) -> Task<Response> { co_return Response::NoContent(); };
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router.Add(Method::kGet, "/health", Noop());
    router.Add(Method::kGet, "/api/v1/conversations", Noop());
    router.Add(Method::kPost, "/api/v1/conversations", Noop(), RouteOptions{.body_limit = 4096});
    router.Add(Method::kGet, "/api/v1/conversations/{id}", Noop());
    router.Add(Method::kDelete, "/api/v1/conversations/{id}", Noop());
    router.Add(Method::kGet, "/api/v1/conversations/{id}/messages/{mid}", Noop());
    router.Add(Method::kGet, "/api/v1/conversations/search", Noop());
  }
  Router router;
};

TEST_F(RouterTest, MatchesLiteralPaths) {
  auto match = router.Match(Method::kGet, "/health");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->pattern, "/health");
}

TEST_F(RouterTest, CapturesAndDecodesPathParameters) {
  auto match = router.Match(Method::kGet, "/api/v1/conversations/abc%20d/messages/42");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->pattern, "/api/v1/conversations/{id}/messages/{mid}");
  ASSERT_EQ(match.params.size(), 2u);
  EXPECT_EQ(match.params[0].first, "id");
  EXPECT_EQ(match.params[0].second, "abc d");
  EXPECT_EQ(match.params[1].second, "42");
}

TEST_F(RouterTest, LiteralSegmentsWinOverParameters) {
  auto match = router.Match(Method::kGet, "/api/v1/conversations/search");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->pattern, "/api/v1/conversations/search");
}

TEST_F(RouterTest, KeepsPerRouteOptions) {
  auto match = router.Match(Method::kPost, "/api/v1/conversations");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->options.body_limit, 4096u);
}

TEST_F(RouterTest, UnknownPathIsNotFound) {
  auto match = router.Match(Method::kGet, "/nope");
  EXPECT_EQ(match.route, nullptr);
  EXPECT_FALSE(match.path_exists);
  EXPECT_EQ(router.Match(Method::kGet, "/health/").route, nullptr);
  EXPECT_EQ(router.Match(Method::kGet, "/api/v1/conversations//messages/1").route, nullptr);
  EXPECT_EQ(router.Match(Method::kGet, "relative").route, nullptr);
}

TEST_F(RouterTest, WrongMethodListsAllowedMethods) {
  auto match = router.Match(Method::kPatch, "/api/v1/conversations/1");
  EXPECT_EQ(match.route, nullptr);
  EXPECT_TRUE(match.path_exists);
  EXPECT_EQ(match.allow, "GET, HEAD, DELETE");
}

TEST_F(RouterTest, HeadFallsBackToGet) {
  auto match = router.Match(Method::kHead, "/health");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->method, Method::kGet);
}

TEST(Router, RejectsMalformedAndDuplicatePatterns) {
  Router router;
  EXPECT_THROW(router.Add(Method::kGet, "no-slash", Noop()), std::invalid_argument);
  EXPECT_THROW(router.Add(Method::kGet, "/a//b", Noop()), std::invalid_argument);
  EXPECT_THROW(router.Add(Method::kGet, "/a/{}", Noop()), std::invalid_argument);
  router.Add(Method::kGet, "/a/{id}", Noop());
  EXPECT_THROW(router.Add(Method::kGet, "/a/{id}", Noop()), std::invalid_argument);
  EXPECT_THROW(router.Add(Method::kPost, "/a/{other}", Noop()), std::invalid_argument);
}

TEST(Request, QueryParametersAreDecoded) {
  Request request;
  request.query = "limit=10&q=hello+world%21&empty=&flag";
  EXPECT_EQ(request.Query("limit"), "10");
  EXPECT_EQ(request.Query("q"), "hello world!");
  EXPECT_EQ(request.Query("empty"), "");
  EXPECT_EQ(request.Query("flag"), "");
  EXPECT_FALSE(request.Query("missing"));
}

TEST(PercentDecode, RejectsTruncatedEscapes) {
  EXPECT_FALSE(PercentDecode("abc%2", false));
  EXPECT_FALSE(PercentDecode("%zz", false));
  EXPECT_EQ(PercentDecode("a%2Fb", false), "a/b");
}

}  // namespace
}  // namespace chatd::http
