#include "gateway/completion_meter.hpp"

#include <simdjson.h>

#include "core/json.hpp"
#include "gateway/completion_request.hpp"

namespace chatd::gateway {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

std::optional<TokenUsage> ReadUsage(element root) {
  object usage;
  if (root["usage"].get(usage) != simdjson::SUCCESS) return std::nullopt;  // absent or null
  TokenUsage counted;
  if (usage["prompt_tokens"].get(counted.prompt_tokens) != simdjson::SUCCESS) counted.prompt_tokens = 0;
  if (usage["completion_tokens"].get(counted.completion_tokens) != simdjson::SUCCESS) counted.completion_tokens = 0;
  if (usage["prompt_tokens_details"]["cached_tokens"].get(counted.cached_tokens) != simdjson::SUCCESS) {
    counted.cached_tokens = 0;
  }
  return counted;
}

// The bytes a message or delta generated: content, refusal, tool call names and arguments.
std::size_t GeneratedBytes(element message) {
  std::size_t bytes = 0;
  std::string_view text;
  if (message["content"].get(text) == simdjson::SUCCESS) bytes += text.size();
  if (message["refusal"].get(text) == simdjson::SUCCESS) bytes += text.size();
  array calls;
  if (message["tool_calls"].get(calls) == simdjson::SUCCESS) {
    for (element call : calls) {
      if (call["function"]["name"].get(text) == simdjson::SUCCESS) bytes += text.size();
      if (call["function"]["arguments"].get(text) == simdjson::SUCCESS) bytes += text.size();
    }
  }
  if (message["function_call"]["arguments"].get(text) == simdjson::SUCCESS) bytes += text.size();
  return bytes;
}

}  // namespace

CompletionMeter::Verdict CompletionMeter::OnEvent(std::string_view data) {
  Verdict verdict;
  if (data == "[DONE]") {
    verdict.done = true;
    return verdict;
  }
  auto parsed = ParseJson(Parser(), data);
  if (!parsed) return verdict;  // not ours to judge: forwarded as it came
  const element root = *parsed;
  element error;
  if (root["error"].get(error) == simdjson::SUCCESS && !error.is_null()) {
    verdict.error = true;
    return verdict;
  }
  array choices;
  const bool has_choices = root["choices"].get(choices) == simdjson::SUCCESS;
  if (auto usage = ReadUsage(root)) {
    reported_ = usage;
    // The usage chunk has no choices; one the client did not ask for is chatd's own.
    if (!client_wants_usage_ && (!has_choices || choices.size() == 0)) verdict.forward = false;
  }
  if (has_choices) {
    for (element choice : choices) {
      element delta;
      if (choice["delta"].get(delta) == simdjson::SUCCESS) generated_bytes_ += GeneratedBytes(delta);
      std::string_view reason;
      if (choice["finish_reason"].get(reason) == simdjson::SUCCESS && !reason.empty()) finish_reason_ = std::string(reason);
    }
  }
  return verdict;
}

void CompletionMeter::OnBody(std::string_view body) {
  auto parsed = ParseJson(Parser(), body);
  if (!parsed) return;
  const element root = *parsed;
  reported_ = ReadUsage(root);
  array choices;
  if (root["choices"].get(choices) != simdjson::SUCCESS) return;
  for (element choice : choices) {
    element message;
    if (choice["message"].get(message) == simdjson::SUCCESS) generated_bytes_ += GeneratedBytes(message);
    std::string_view reason;
    if (choice["finish_reason"].get(reason) == simdjson::SUCCESS && !reason.empty()) finish_reason_ = std::string(reason);
  }
}

TokenUsage CompletionMeter::Usage(std::int64_t prompt_estimate) const {
  if (reported_) return *reported_;
  TokenUsage estimate;
  estimate.prompt_tokens = prompt_estimate;
  estimate.completion_tokens = EstimateTokens(generated_bytes_);
  estimate.estimated = true;
  return estimate;
}

}  // namespace chatd::gateway
