#include "http/json_body.hpp"

#include <gtest/gtest.h>

namespace chatd::http {
namespace {

Request JsonRequest(std::string_view content_type, std::string body) {
  Request request;
  request.method = Method::kPost;
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", content_type);
  request.body = std::move(body);
  return request;
}

TEST(ParseJsonBody, AcceptsJsonWithCharsetAndPlusJsonTypes) {
  for (std::string_view type : {"application/json", "application/json; charset=utf-8", "Application/JSON",
                                "application/merge-patch+json"}) {
    auto request = JsonRequest(type, R"({"a":1})");
    auto parsed = ParseJsonBody(request, ThreadJsonParser());
    ASSERT_TRUE(parsed) << type;
  }
}

TEST(ParseJsonBody, WrongOrMissingContentTypeIs415) {
  for (std::string_view type : {"", "text/plain", "application/x-www-form-urlencoded"}) {
    auto request = JsonRequest(type, R"({"a":1})");
    auto parsed = ParseJsonBody(request, ThreadJsonParser());
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().code, ErrorCode::kUnsupportedMediaType);
    EXPECT_EQ(HttpStatus(parsed.error().code), 415);
  }
}

TEST(ParseJsonBody, MalformedJsonIs400NamingWhereItBroke) {
  auto request = JsonRequest("application/json", "{\"a\": tru}");
  auto parsed = ParseJsonBody(request, ThreadJsonParser());
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(parsed.error().message, "invalid JSON at line 1, column 7: unexpected character");
}

}  // namespace
}  // namespace chatd::http
