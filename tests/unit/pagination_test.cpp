#include "api/pagination.hpp"

#include <gtest/gtest.h>

namespace chatd::api {
namespace {

TEST(ParsePageRequest, DefaultsAndValidValues) {
  http::Request request;
  auto page = ParsePageRequest(request);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->limit, kDefaultPageSize);
  EXPECT_EQ(page->cursor, "");
  request.query = "limit=100&cursor=abc%3D";
  page = ParsePageRequest(request);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->limit, 100u);
  EXPECT_EQ(page->cursor, "abc=");
}

TEST(ParsePageRequest, RejectsBadLimitsNamingTheParameter) {
  for (std::string_view query : {"limit=0", "limit=101", "limit=ten", "limit=-1", "limit=5x"}) {
    http::Request request;
    request.query = query;
    auto page = ParsePageRequest(request);
    ASSERT_FALSE(page) << query;
    EXPECT_EQ(page.error().param, "limit");
  }
}

TEST(ListBody, WritesDataAndNextCursor) {
  EXPECT_EQ(ListBody("[1,2]", "c2"), R"({"data":[1,2],"next_cursor":"c2"})");
  EXPECT_EQ(ListBody("[]", ""), R"({"data":[],"next_cursor":null})");
}

}  // namespace
}  // namespace chatd::api
