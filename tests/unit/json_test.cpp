#include "core/json.hpp"

#include <gtest/gtest.h>

namespace chatd {
namespace {

TEST(JsonWriter, WritesNestedObjectsWithCommas) {
  JsonWriter json;
  json.BeginObject().Field("a", 1).Key("b").BeginArray().Int(1).String("x").Null().EndArray();
  json.Key("c").BeginObject().Field("d", true).EndObject().Field("e", "f").EndObject();
  EXPECT_EQ(json.str(), R"({"a":1,"b":[1,"x",null],"c":{"d":true},"e":"f"})");
}

TEST(JsonWriter, EscapesControlCharactersAndQuotes) {
  JsonWriter json;
  json.String("a\"b\\c\n\x01");
  EXPECT_EQ(json.str(), R"("a\"b\\c\n\u0001")");
}

TEST(JsonWriter, NonFiniteDoublesBecomeNull) {
  JsonWriter json;
  json.BeginArray().Double(1.5).Double(std::numeric_limits<double>::infinity()).EndArray();
  EXPECT_EQ(json.str(), "[1.5,null]");
}

TEST(ParseJson, ParsesValidDocuments) {
  simdjson::dom::parser parser;
  auto parsed = ParseJson(parser, R"({"model":"demo","n":2})");
  ASSERT_TRUE(parsed);
  std::string_view model;
  ASSERT_EQ((*parsed)["model"].get(model), simdjson::SUCCESS);
  EXPECT_EQ(model, "demo");
}

TEST(ParseJson, NamesLineAndColumnOfTheError) {
  simdjson::dom::parser parser;
  auto parsed = ParseJson(parser, "{\n  \"a\": 1,\n  \"b\" 2\n}");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(parsed.error().message, "invalid JSON at line 3, column 7: expected ':' after a key");
}

TEST(ParseJson, ReportsEmptyAndTruncatedBodies) {
  EXPECT_EQ(DescribeJsonError(""), "invalid JSON at line 1, column 1: the body is empty");
  EXPECT_EQ(DescribeJsonError("{\"a\": \"x"), "invalid JSON at line 1, column 9: unterminated string");
  EXPECT_EQ(DescribeJsonError("[1,2] x"), "invalid JSON at line 1, column 7: unexpected data after the JSON value");
}

}  // namespace
}  // namespace chatd
