// The Messages API translation (gateway/anthropic.hpp) both ways: request mapping with the
// field named on errors, the message built from a chat completion, and the stream events
// built from OpenAI chunks (text, tool calls, usage, errors).
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "gateway/anthropic.hpp"
#include "gateway/completion_request.hpp"

namespace chatd::gateway {
namespace {

// Parsed JSON compared as minified text (simdjson keeps member order).
std::string Minified(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element value;
  EXPECT_EQ(parser.parse(json).get(value), simdjson::SUCCESS) << json;
  return simdjson::to_string(value);
}

std::string ParamOf(std::string_view body) {
  auto translated = AnthropicToOpenAi(body);
  EXPECT_FALSE(translated) << body;
  if (translated) return {};
  EXPECT_EQ(translated.error().code, ErrorCode::kInvalidArgument);
  return translated.error().param;
}

struct Event {
  std::string name;
  std::string data;
};

std::vector<Event> Events(const std::string& out) {
  std::vector<Event> events;
  std::size_t at = 0;
  while (at < out.size()) {
    const std::size_t end = out.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << out.substr(at);
    if (end == std::string::npos) break;
    const std::string block = out.substr(at, end - at);
    const std::size_t newline = block.find('\n');
    EXPECT_EQ(block.rfind("event: ", 0), 0u) << block;
    EXPECT_EQ(block.compare(newline + 1, 6, "data: "), 0) << block;
    events.push_back({block.substr(7, newline - 7), block.substr(newline + 7)});
    at = end + 2;
  }
  return events;
}

std::vector<std::string> Names(const std::vector<Event>& events) {
  std::vector<std::string> names;
  for (const Event& event : events) names.push_back(event.name);
  return names;
}

TEST(AnthropicRequest, MapsEveryFieldToItsOpenAiForm) {
  auto translated = AnthropicToOpenAi(R"({
    "model": "claude-x", "max_tokens": 256,
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}],
    "messages": [
      {"role": "user", "content": [
        {"type": "text", "text": "Weather and this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
      {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hm", "signature": "s"},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [{"type": "text", "text": "down"}]},
        {"type": "text", "text": "Thanks"}]}
    ],
    "temperature": 0.2, "top_p": 0.8, "top_k": 5, "stop_sequences": ["END"], "stream": true,
    "tools": [{"name": "get_weather", "description": "By city", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "get_weather"},
    "metadata": {"user_id": "u-1"}
  })");
  ASSERT_TRUE(translated) << translated.error().message;
  EXPECT_EQ(*translated, Minified(R"({
    "model": "claude-x", "max_tokens": 256,
    "messages": [
      {"role": "system", "content": "Be brief.\n\nAnswer in French."},
      {"role": "user", "content": [
        {"type": "text", "text": "Weather and this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
      {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
      {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: down"},
      {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}
    ],
    "temperature": 0.2, "top_p": 0.8, "stop": ["END"], "stream": true,
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "By city",
               "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "user": "u-1"
  })"));
  // What comes out is a chat completion the gateway accepts.
  auto prepared = PrepareCompletion(*translated);
  ASSERT_TRUE(prepared) << prepared.error().message;
  EXPECT_TRUE(prepared->stream);
  EXPECT_EQ(prepared->max_tokens, 256);
}

TEST(AnthropicRequest, ToolChoiceModes) {
  const std::string head = R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)"
                           R"("tools":[{"name":"t","input_schema":{}}],"tool_choice":)";
  auto any = AnthropicToOpenAi(head + R"({"type":"any","disable_parallel_tool_use":true}})");
  ASSERT_TRUE(any);
  EXPECT_NE(any->find(R"("tool_choice":"required","parallel_tool_calls":false)"), std::string::npos) << *any;
  auto automatic = AnthropicToOpenAi(head + R"({"type":"auto"}})");
  ASSERT_TRUE(automatic);
  EXPECT_NE(automatic->find(R"("tool_choice":"auto")"), std::string::npos) << *automatic;
  auto none = AnthropicToOpenAi(head + R"({"type":"none"}})");
  ASSERT_TRUE(none);
  EXPECT_NE(none->find(R"("tool_choice":"none")"), std::string::npos) << *none;
}

TEST(AnthropicRequest, NamesTheFieldOfTheFirstProblem) {
  EXPECT_EQ(ParamOf(R"({"max_tokens":1,"messages":[]})"), "model");
  EXPECT_EQ(ParamOf(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":"2","messages":[{"role":"user","content":"x"}]})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[]})"), "messages");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"tool","content":"x"}]})"), "messages[0].role");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user"}]})"), "messages[0].content");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image",)"
                    R"("source":{"type":"base64","media_type":"text/plain","data":"x"}}]}]})"),
            "messages[0].content[0].source.media_type");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use",)"
                    R"("id":"a","name":"b","input":{}}]}]})"),
            "messages[0].content[0].type");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use",)"
                    R"("id":"a","name":"b","input":[]}]}]})"),
            "messages[0].content[0].input");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"temperature":2})"),
            "temperature");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)"
                    R"("stop_sequences":["a","b","c","d","e"]})"),
            "stop_sequences");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)"
                    R"("tools":[{"type":"web_search_20250305","name":"web_search"}]})"),
            "tools[0].type");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)"
                    R"("tool_choice":{"type":"any"}})"),
            "tool_choice");
  EXPECT_EQ(ParamOf(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],)"
                    R"("metadata":{"user_id":5}})"),
            "metadata.user_id");
}

TEST(AnthropicResponse, TextAndToolCallsBecomeContentBlocks) {
  const TokenUsage usage{.prompt_tokens = 20, .completion_tokens = 7, .cached_tokens = 4};
  auto message = OpenAiToAnthropic(R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,
      "message":{"role":"assistant","content":"Checking.","tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}},
        {"id":"call_2","type":"function","function":{"name":"broken","arguments":"{not json"}}]},
      "finish_reason":"tool_calls"}]})",
                                   "msg_1", "gpt-x", usage);
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_EQ(*message, Minified(R"({"id":"msg_1","type":"message","role":"assistant","content":[
      {"type":"text","text":"Checking."},
      {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Oslo"}},
      {"type":"tool_use","id":"call_2","name":"broken","input":{}}],
    "model":"gpt-x","stop_reason":"tool_use","stop_sequence":null,
    "usage":{"input_tokens":16,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":7}})"));
}

TEST(AnthropicResponse, StopReasonsAndBadAnswers) {
  EXPECT_EQ(AnthropicStopReason("stop"), "end_turn");
  EXPECT_EQ(AnthropicStopReason("length"), "max_tokens");
  EXPECT_EQ(AnthropicStopReason("tool_calls"), "tool_use");
  EXPECT_EQ(AnthropicStopReason("content_filter"), "refusal");
  auto bad = OpenAiToAnthropic(R"({"object":"list"})", "msg_1", "m", TokenUsage{});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUpstreamUnavailable);
}

TEST(AnthropicErrors, TypesAndBody) {
  EXPECT_EQ(AnthropicErrorType(ErrorCode::kInvalidArgument), "invalid_request_error");
  EXPECT_EQ(AnthropicErrorType(ErrorCode::kUnauthenticated), "authentication_error");
  EXPECT_EQ(AnthropicErrorType(ErrorCode::kPermissionDenied), "permission_error");
  EXPECT_EQ(AnthropicErrorType(ErrorCode::kNotFound), "not_found_error");
  EXPECT_EQ(AnthropicErrorType(ErrorCode::kRateLimited), "rate_limit_error");
  EXPECT_EQ(AnthropicErrorType(ErrorCode::kUpstreamUnavailable), "api_error");
  EXPECT_EQ(AnthropicErrorType(ErrorCode::kUnavailable), "overloaded_error");
  EXPECT_EQ(AnthropicErrorBody(Error{ErrorCode::kNotFound, "no \"x\""}),
            R"({"type":"error","error":{"type":"not_found_error","message":"no \"x\""}})");
}

TEST(AnthropicStreamTest, TextChunksBecomeOneTextBlock) {
  AnthropicStream stream("msg_1", "gpt-x");
  std::string out;
  stream.Begin(12, out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})", out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})", out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]})", out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{},"finish_reason":"length"}]})", out);
  stream.Chunk(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2}})", out);
  stream.End(TokenUsage{.prompt_tokens = 12, .completion_tokens = 2}, out);
  const auto events = Events(out);
  EXPECT_EQ(Names(events),
            (std::vector<std::string>{"message_start", "ping", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(events[0].data, Minified(R"({"type":"message_start","message":{"id":"msg_1","type":"message",
      "role":"assistant","content":[],"model":"gpt-x","stop_reason":null,"stop_sequence":null,
      "usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}})"));
  EXPECT_EQ(events[2].data, R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  EXPECT_EQ(events[3].data, R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}})");
  EXPECT_EQ(events[5].data, R"({"type":"content_block_stop","index":0})");
  EXPECT_EQ(events[6].data, Minified(R"({"type":"message_delta","delta":{"stop_reason":"max_tokens",
      "stop_sequence":null},"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
      "output_tokens":2}})"));
}

TEST(AnthropicStreamTest, ToolCallsBecomeToolUseBlocksAfterTheText) {
  AnthropicStream stream("msg_1", "gpt-x");
  std::string out;
  stream.Begin(1, out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"content":"Looking."}}]})", out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function",)"
               R"("function":{"name":"get_weather","arguments":""}}]}}]})",
               out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]}}]})",
               out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":1}"}}]}}]})",
               out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","function":)"
               R"({"name":"get_time","arguments":"{}"}}]}}]})",
               out);
  stream.Chunk(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", out);
  stream.End(TokenUsage{.prompt_tokens = 1, .completion_tokens = 9}, out);
  const auto events = Events(out);
  EXPECT_EQ(Names(events),
            (std::vector<std::string>{"message_start", "ping", "content_block_start", "content_block_delta",
                                      "content_block_stop", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "content_block_start",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(events[5].data, R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use",)"
                            R"("id":"call_a","name":"get_weather","input":{}}})");
  EXPECT_EQ(events[6].data,
            R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}})");
  EXPECT_EQ(events[9].data, R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use",)"
                            R"("id":"call_b","name":"get_time","input":{}}})");
  EXPECT_NE(events[12].data.find(R"("stop_reason":"tool_use")"), std::string::npos) << events[12].data;
}

TEST(AnthropicStreamTest, AnErrorChunkBecomesAnErrorEvent) {
  AnthropicStream stream("msg_1", "gpt-x");
  std::string out;
  stream.Chunk(R"({"error":{"message":"overloaded upstream","type":"server_error"}})", out);
  AnthropicStream::Fail(Error{ErrorCode::kUpstreamTimeout, "no token within 30000 ms"}, out);
  const auto events = Events(out);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].name, "error");
  EXPECT_EQ(events[0].data, R"({"type":"error","error":{"type":"api_error","message":"overloaded upstream"}})");
  EXPECT_EQ(events[1].data, R"({"type":"error","error":{"type":"api_error","message":"no token within 30000 ms"}})");
}

}  // namespace
}  // namespace chatd::gateway
