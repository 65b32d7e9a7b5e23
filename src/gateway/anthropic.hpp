// Anthropic's Messages API (POST /v1/messages) on top of the OpenAI-compatible gateway:
// the request is translated into a chat completion body, which then takes the same path
// as /v1/chat/completions (validation, model routing, admission, provider, accounting);
// the answer is translated back — a whole `message`, or Anthropic's stream events built
// from OpenAI's chunks as they pass.
//
// What does not map: `top_k` (OpenAI has none) is dropped; `thinking` is dropped; a stop
// is reported as `end_turn` because OpenAI does not say which stop sequence matched;
// server tools (web search, ...) are refused. Images inside a tool_result are refused
// (an OpenAI tool message carries text only).
//
// Pure functions and a state machine over text: unit-tested in tests/unit/gateway_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/expected.hpp"
#include "gateway/usage.hpp"

namespace chatd::gateway {

/// Translates a Messages API body into a chat completion body. kInvalidArgument naming the
/// Anthropic field (e.g. "messages[1].content[0].source.media_type") for the first problem.
Expected<std::string> AnthropicToOpenAi(std::string_view body);

/// Translates a non-streamed `chat.completion` into an Anthropic `message`. `usage` is the
/// accounted usage (reported or estimated); `model` the public model name.
/// kUpstreamUnavailable when the upstream's answer is not a chat completion.
Expected<std::string> OpenAiToAnthropic(std::string_view completion, std::string_view message_id,
                                        std::string_view model, const TokenUsage& usage);

/// A tool call's `arguments` (JSON text, possibly malformed) as a tool_use `input`: the
/// object as it is, anything else as {} (Anthropic's input is always an object).
std::string ToolInput(std::string_view arguments);

/// Anthropic's stop_reason for an OpenAI finish_reason.
std::string_view AnthropicStopReason(std::string_view finish_reason);

/// Anthropic's error type for an error code ("invalid_request_error", "not_found_error", ...).
std::string_view AnthropicErrorType(ErrorCode code);
/// The JSON body of an Anthropic error: {"type":"error","error":{"type","message"}}.
std::string AnthropicErrorBody(const Error& error);

/// Turns the OpenAI chunks of one streamed completion into Anthropic's events: message_start
/// and ping first, content_block_start/delta/stop per text or tool_use block (text_delta,
/// input_json_delta), then message_delta (stop_reason, usage) and message_stop.
class AnthropicStream {
 public:
  AnthropicStream(std::string message_id, std::string model) : id_(std::move(message_id)), model_(std::move(model)) {}

  /// message_start (usage.input_tokens: the prompt estimate) and a ping.
  void Begin(std::int64_t input_tokens_estimate, std::string& out);
  /// One chunk's data (not `[DONE]`). A chunk with an `error` member becomes an error event.
  void Chunk(std::string_view data, std::string& out);
  /// The stream completed: open blocks stop, message_delta with the final usage, message_stop.
  void End(const TokenUsage& usage, std::string& out);
  /// The stream failed: an `error` event.
  static void Fail(const Error& error, std::string& out);

 private:
  void StopOpen(std::string& out);

  std::string id_;
  std::string model_;
  int next_index_ = 0;
  int text_block_ = -1;                      // the open text block, -1 when none
  std::map<std::int64_t, int> tool_blocks_;  // OpenAI tool call index → open block index
  std::string finish_reason_;
};

}  // namespace chatd::gateway
