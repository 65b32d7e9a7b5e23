// Reading a client's POST /v1/chat/completions body: validate what OpenAI validates
// (answering 400 with `param` naming the field, as the SDKs show it), then prepare what
// goes upstream — the client's own JSON, every field it sent passed on untouched except
// `model` (replaced per upstream by the provider) and `stream_options` (usage is always
// asked for on a stream, so accounting is exact).
//
// Pure functions over text: no I/O, unit-tested in tests/unit/gateway_request_test.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace chatd::gateway {

/// Body fields that would let a request choose the upstream or its credentials (as some
/// gateways allow: a known way to leak keys or reach internal hosts). chatd refuses them
/// with 400 instead of passing them on to an upstream that might honour them.
inline constexpr std::string_view kUpstreamOverrideFields[] = {"api_base", "api_key", "api_version", "base_url",
                                                               "custom_llm_provider"};

struct PreparedCompletion {
  std::string model;  // the public model name the client asked for
  /// The body's members except "model", as JSON text without braces (llm::CompletionRequest).
  std::shared_ptr<const std::string> fields;
  bool stream = false;
  /// The client asked for the usage chunk itself (stream_options.include_usage); when not,
  /// the gateway strips the chunk chatd asked for on its own behalf.
  bool client_wants_usage = false;
  int n = 1;
  std::optional<double> temperature;       // absent (or null): the upstream's default
  std::optional<std::int64_t> max_tokens;  // max_completion_tokens, else max_tokens
  std::int64_t prompt_tokens_estimate = 0;
};

/// Validates `body` and prepares the upstream fields. kInvalidArgument with `param` (e.g.
/// "messages[1].content[0].image_url.url") for the first problem found.
Expected<PreparedCompletion> PrepareCompletion(std::string_view body);

/// A rough token count for text when an upstream reports none: ~4 bytes a token, the rule
/// of thumb for English with OpenAI's tokenizers (never 0 for non-empty text).
std::int64_t EstimateTokens(std::size_t bytes);

}  // namespace chatd::gateway
