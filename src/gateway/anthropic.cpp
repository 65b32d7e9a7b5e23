#include "gateway/anthropic.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/json.hpp"

namespace chatd::gateway {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

constexpr std::size_t kMaxStopSequences = 4;  // what OpenAI accepts

simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

Unexpected Invalid(std::string message, std::string param) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(param));
}

Unexpected Missing(const std::string& param) { return Invalid(fmt::format("{}: Field required", param), param); }

Unexpected WrongType(const std::string& param, std::string_view expected) {
  return Invalid(fmt::format("{}: Input should be {}", param, expected), param);
}

Expected<std::string_view> RequiredString(object parent, std::string_view key, const std::string& path) {
  const std::string param = path.empty() ? std::string(key) : path + "." + std::string(key);
  element value;
  if (parent[key].get(value) != simdjson::SUCCESS) return Missing(param);
  std::string_view text;
  if (value.get(text) != simdjson::SUCCESS) return WrongType(param, "a valid string");
  return text;
}

// An image block's source as an OpenAI image URL (a data: URL for base64).
Expected<std::string> ImageUrl(object block, const std::string& path) {
  element source_value;
  object source;
  if (block["source"].get(source_value) != simdjson::SUCCESS) return Missing(path + ".source");
  if (source_value.get(source) != simdjson::SUCCESS) return WrongType(path + ".source", "a valid dictionary");
  auto type = RequiredString(source, "type", path + ".source");
  if (!type) return Unexpected{std::move(type).error()};
  if (*type == "base64") {
    auto media_type = RequiredString(source, "media_type", path + ".source");
    if (!media_type) return Unexpected{std::move(media_type).error()};
    if (!media_type->starts_with("image/")) {
      return Invalid(fmt::format("{}.source.media_type: Input should be an image media type", path),
                     path + ".source.media_type");
    }
    auto data = RequiredString(source, "data", path + ".source");
    if (!data) return Unexpected{std::move(data).error()};
    return fmt::format("data:{};base64,{}", *media_type, *data);
  }
  if (*type == "url") {
    auto url = RequiredString(source, "url", path + ".source");
    if (!url) return Unexpected{std::move(url).error()};
    return std::string(*url);
  }
  return Invalid(fmt::format("{}.source.type: Input should be 'base64' or 'url'", path), path + ".source.type");
}

// Text of a system prompt or tool_result content: a string or an array of text blocks.
Expected<std::string> TextOf(element value, const std::string& param) {
  std::string_view text;
  if (value.get(text) == simdjson::SUCCESS) return std::string(text);
  array blocks;
  if (value.get(blocks) != simdjson::SUCCESS) return WrongType(param, "a valid string or a list of text blocks");
  std::string joined;
  std::size_t index = 0;
  for (element item : blocks) {
    const std::string path = fmt::format("{}[{}]", param, index++);
    object block;
    if (item.get(block) != simdjson::SUCCESS) return WrongType(path, "a valid dictionary");
    auto type = RequiredString(block, "type", path);
    if (!type) return Unexpected{std::move(type).error()};
    if (*type != "text") {
      return Invalid(fmt::format("{}.type: only text blocks are supported here, not '{}'", path, *type),
                     path + ".type");
    }
    auto piece = RequiredString(block, "text", path);
    if (!piece) return Unexpected{std::move(piece).error()};
    if (!joined.empty()) joined += "\n\n";
    joined += *piece;
  }
  return joined;
}

// One Anthropic message as one or more OpenAI messages, written to `json` (inside the array).
Expected<void> WriteMessage(element value, const std::string& path, JsonWriter& json) {
  object message;
  if (value.get(message) != simdjson::SUCCESS) return WrongType(path, "a valid dictionary");
  auto role = RequiredString(message, "role", path);
  if (!role) return Unexpected{std::move(role).error()};
  if (*role != "user" && *role != "assistant") {
    return Invalid(fmt::format("{}.role: Input should be 'user' or 'assistant'", path), path + ".role");
  }
  const bool user = *role == "user";
  element content;
  const std::string content_path = path + ".content";
  if (message["content"].get(content) != simdjson::SUCCESS) return Missing(content_path);
  std::string_view text;
  if (content.get(text) == simdjson::SUCCESS) {
    json.BeginObject().Field("role", *role).Field("content", text).EndObject();
    return {};
  }
  array blocks;
  if (content.get(blocks) != simdjson::SUCCESS) return WrongType(content_path, "a valid string or a list of blocks");

  // User: tool results first (OpenAI wants them right after the assistant's calls), then
  // one user message with the other parts. Assistant: text joined, tool_use as tool_calls.
  JsonWriter parts;  // user content parts
  parts.BeginArray();
  std::size_t part_count = 0;
  std::string assistant_text;
  JsonWriter calls;
  calls.BeginArray();
  std::size_t call_count = 0;
  std::size_t index = 0;
  for (element item : blocks) {
    const std::string block_path = fmt::format("{}[{}]", content_path, index++);
    object block;
    if (item.get(block) != simdjson::SUCCESS) return WrongType(block_path, "a valid dictionary");
    auto type = RequiredString(block, "type", block_path);
    if (!type) return Unexpected{std::move(type).error()};
    if (*type == "text") {
      auto piece = RequiredString(block, "text", block_path);
      if (!piece) return Unexpected{std::move(piece).error()};
      if (user) {
        parts.BeginObject().Field("type", "text").Field("text", *piece).EndObject();
        ++part_count;
      } else {
        assistant_text += *piece;
      }
    } else if (*type == "image" && user) {
      auto url = ImageUrl(block, block_path);
      if (!url) return Unexpected{std::move(url).error()};
      parts.BeginObject().Field("type", "image_url").Key("image_url").BeginObject().Field("url", *url).EndObject();
      parts.EndObject();
      ++part_count;
    } else if (*type == "tool_use" && !user) {
      auto id = RequiredString(block, "id", block_path);
      if (!id) return Unexpected{std::move(id).error()};
      auto name = RequiredString(block, "name", block_path);
      if (!name) return Unexpected{std::move(name).error()};
      element input;
      if (block["input"].get(input) != simdjson::SUCCESS) return Missing(block_path + ".input");
      if (!input.is_object()) return WrongType(block_path + ".input", "a valid dictionary");
      calls.BeginObject().Field("id", *id).Field("type", "function").Key("function").BeginObject();
      calls.Field("name", *name).Field("arguments", simdjson::to_string(input)).EndObject().EndObject();
      ++call_count;
    } else if (*type == "tool_result" && user) {
      auto id = RequiredString(block, "tool_use_id", block_path);
      if (!id) return Unexpected{std::move(id).error()};
      std::string result;
      element result_value;
      if (block["content"].get(result_value) == simdjson::SUCCESS && !result_value.is_null()) {
        auto joined = TextOf(result_value, block_path + ".content");
        if (!joined) return Unexpected{std::move(joined).error()};
        result = std::move(*joined);
      }
      bool is_error = false;
      element flag;
      if (block["is_error"].get(flag) == simdjson::SUCCESS && flag.get(is_error) == simdjson::SUCCESS && is_error) {
        result = "Error: " + result;
      }
      json.BeginObject().Field("role", "tool").Field("tool_call_id", *id).Field("content", result).EndObject();
    } else if (*type == "thinking" || *type == "redacted_thinking") {
      // The upstream did not produce it and cannot take it back: dropped.
    } else {
      return Invalid(
          fmt::format("{}.type: '{}' is not a content block a {} message may have here", block_path, *type, *role),
          block_path + ".type");
    }
  }
  parts.EndArray();
  calls.EndArray();
  if (user) {
    if (part_count > 0) json.BeginObject().Field("role", "user").Key("content").Raw(parts.str()).EndObject();
    return {};
  }
  json.BeginObject().Field("role", "assistant").Key("content");
  if (assistant_text.empty() && call_count > 0)
    json.Null();
  else
    json.String(assistant_text);
  if (call_count > 0) json.Key("tool_calls").Raw(calls.str());
  json.EndObject();
  return {};
}

Expected<void> WriteTools(element value, JsonWriter& json) {
  array tools;
  if (value.get(tools) != simdjson::SUCCESS) return WrongType("tools", "a valid list");
  json.Key("tools").BeginArray();
  std::size_t index = 0;
  for (element item : tools) {
    const std::string path = fmt::format("tools[{}]", index++);
    object tool;
    if (item.get(tool) != simdjson::SUCCESS) return WrongType(path, "a valid dictionary");
    std::string_view type;
    if (tool["type"].get(type) == simdjson::SUCCESS && type != "custom") {
      return Invalid(
          fmt::format("{}.type: server tool '{}' is not supported by chatd; define a custom tool", path, type),
          path + ".type");
    }
    auto name = RequiredString(tool, "name", path);
    if (!name) return Unexpected{std::move(name).error()};
    element schema;
    if (tool["input_schema"].get(schema) != simdjson::SUCCESS) return Missing(path + ".input_schema");
    if (!schema.is_object()) return WrongType(path + ".input_schema", "a valid dictionary");
    json.BeginObject().Field("type", "function").Key("function").BeginObject().Field("name", *name);
    std::string_view description;
    if (tool["description"].get(description) == simdjson::SUCCESS) json.Field("description", description);
    json.Key("parameters").Raw(simdjson::to_string(schema)).EndObject().EndObject();
  }
  json.EndArray();
  return {};
}

Expected<void> WriteToolChoice(element value, bool has_tools, JsonWriter& json) {
  object choice;
  if (value.get(choice) != simdjson::SUCCESS) return WrongType("tool_choice", "a valid dictionary");
  auto type = RequiredString(choice, "type", "tool_choice");
  if (!type) return Unexpected{std::move(type).error()};
  if (*type == "none") {
    if (has_tools) json.Field("tool_choice", "none");
    return {};
  }
  if (!has_tools) return Invalid("tool_choice: may only be specified while providing tools", "tool_choice");
  if (*type == "auto") {
    json.Field("tool_choice", "auto");
  } else if (*type == "any") {
    json.Field("tool_choice", "required");
  } else if (*type == "tool") {
    auto name = RequiredString(choice, "name", "tool_choice");
    if (!name) return Unexpected{std::move(name).error()};
    json.Key("tool_choice").BeginObject().Field("type", "function").Key("function").BeginObject();
    json.Field("name", *name).EndObject().EndObject();
  } else {
    return Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", "tool_choice.type");
  }
  bool disable_parallel = false;
  element flag;
  if (choice["disable_parallel_tool_use"].get(flag) == simdjson::SUCCESS &&
      flag.get(disable_parallel) == simdjson::SUCCESS && disable_parallel) {
    json.Field("parallel_tool_calls", false);
  }
  return {};
}

// A number field passed on as written; absent or null is fine.
Expected<void> CopyNumber(object root, std::string_view key, double min, double max, JsonWriter& json) {
  element value;
  if (root[key].get(value) != simdjson::SUCCESS || value.is_null()) return {};
  double number = 0;
  if (value.get(number) != simdjson::SUCCESS) return WrongType(std::string(key), "a valid number");
  if (number < min || number > max) {
    return Invalid(fmt::format("{}: Input should be between {} and {}", key, min, max), std::string(key));
  }
  json.Key(key).Raw(simdjson::to_string(value));
  return {};
}

void WriteEvent(std::string& out, std::string_view name, std::string_view data) {
  out += "event: ";
  out += name;
  out += "\ndata: ";
  out += data;
  out += "\n\n";
}

void WriteUsage(JsonWriter& json, const TokenUsage& usage) {
  json.Key("usage").BeginObject().Field("input_tokens", usage.prompt_tokens - usage.cached_tokens);
  json.Field("cache_creation_input_tokens", std::int64_t{0}).Field("cache_read_input_tokens", usage.cached_tokens);
  json.Field("output_tokens", usage.completion_tokens).EndObject();
}

}  // namespace

Expected<std::string> AnthropicToOpenAi(std::string_view body) {
  auto parsed = ParseJson(Parser(), body);
  if (!parsed) return Unexpected{std::move(parsed).error()};
  object root;
  if (parsed->get(root) != simdjson::SUCCESS) return Invalid("The request body must be a JSON object.", "");
  JsonWriter json;
  json.BeginObject();
  auto model = RequiredString(root, "model", "");
  if (!model) return Unexpected{std::move(model).error()};
  if (model->empty()) return Invalid("model: String should have at least 1 character", "model");
  json.Field("model", *model);

  element value;
  if (root["max_tokens"].get(value) != simdjson::SUCCESS) return Missing("max_tokens");
  std::int64_t max_tokens = 0;
  if (value.get(max_tokens) != simdjson::SUCCESS) return WrongType("max_tokens", "a valid integer");
  if (max_tokens < 1) return Invalid("max_tokens: Input should be greater than or equal to 1", "max_tokens");
  json.Field("max_tokens", max_tokens);

  json.Key("messages").BeginArray();
  if (root["system"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    auto system = TextOf(value, "system");
    if (!system) return Unexpected{std::move(system).error()};
    json.BeginObject().Field("role", "system").Field("content", *system).EndObject();
  }
  if (root["messages"].get(value) != simdjson::SUCCESS) return Missing("messages");
  array messages;
  if (value.get(messages) != simdjson::SUCCESS) return WrongType("messages", "a valid list");
  if (messages.size() == 0) return Invalid("messages: at least one message is required", "messages");
  std::size_t index = 0;
  for (element message : messages) {
    if (auto written = WriteMessage(message, fmt::format("messages[{}]", index++), json); !written) {
      return Unexpected{std::move(written).error()};
    }
  }
  json.EndArray();

  if (auto copied = CopyNumber(root, "temperature", 0, 1, json); !copied) return Unexpected{std::move(copied).error()};
  if (auto copied = CopyNumber(root, "top_p", 0, 1, json); !copied) return Unexpected{std::move(copied).error()};
  if (root["top_k"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    std::int64_t top_k = 0;
    if (value.get(top_k) != simdjson::SUCCESS || top_k < 0) return WrongType("top_k", "a valid non-negative integer");
    // OpenAI has no top_k: dropped.
  }
  if (root["stop_sequences"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    array stops;
    if (value.get(stops) != simdjson::SUCCESS) return WrongType("stop_sequences", "a valid list");
    if (stops.size() > kMaxStopSequences) {
      return Invalid(fmt::format("stop_sequences: at most {} stop sequences are supported", kMaxStopSequences),
                     "stop_sequences");
    }
    std::size_t i = 0;
    for (element stop : stops) {
      if (!stop.is_string()) return WrongType(fmt::format("stop_sequences[{}]", i), "a valid string");
      ++i;
    }
    if (stops.size() > 0) json.Key("stop").Raw(simdjson::to_string(value));
  }
  bool stream = false;
  if (root["stream"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (value.get(stream) != simdjson::SUCCESS) return WrongType("stream", "a valid boolean");
    json.Field("stream", stream);
  }
  bool has_tools = false;
  if (root["tools"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    array tools;
    has_tools = value.get(tools) == simdjson::SUCCESS && tools.size() > 0;
    if (has_tools || !value.is_array()) {
      if (auto written = WriteTools(value, json); !written) return Unexpected{std::move(written).error()};
    }
  }
  if (root["tool_choice"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (auto written = WriteToolChoice(value, has_tools, json); !written) return Unexpected{std::move(written).error()};
  }
  if (root["metadata"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    object metadata;
    if (value.get(metadata) != simdjson::SUCCESS) return WrongType("metadata", "a valid dictionary");
    element user;
    if (metadata["user_id"].get(user) == simdjson::SUCCESS && !user.is_null()) {
      std::string_view user_id;
      if (user.get(user_id) != simdjson::SUCCESS) return WrongType("metadata.user_id", "a valid string");
      json.Field("user", user_id);
    }
  }
  json.EndObject();
  return std::move(json).str();
}

std::string_view AnthropicStopReason(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";
}

std::string_view AnthropicErrorType(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kMethodNotAllowed:
    case ErrorCode::kConflict:
    case ErrorCode::kUnsupportedMediaType:
      return "invalid_request_error";
    case ErrorCode::kUnauthenticated:
      return "authentication_error";
    case ErrorCode::kPermissionDenied:
      return "permission_error";
    case ErrorCode::kNotFound:
      return "not_found_error";
    case ErrorCode::kPayloadTooLarge:
      return "request_too_large";
    case ErrorCode::kRateLimited:
      return "rate_limit_error";
    case ErrorCode::kUnavailable:
      return "overloaded_error";
    case ErrorCode::kRequestTimeout:
    case ErrorCode::kInternal:
    case ErrorCode::kUpstreamUnavailable:
    case ErrorCode::kUpstreamTimeout:
      return "api_error";
  }
  return "api_error";
}

std::string AnthropicErrorBody(const Error& error) {
  JsonWriter json;
  json.BeginObject().Field("type", "error").Key("error").BeginObject();
  json.Field("type", AnthropicErrorType(error.code)).Field("message", error.message).EndObject().EndObject();
  return std::move(json).str();
}

std::string ToolInput(std::string_view arguments) {
  // The model's arguments are JSON text that may be malformed: an object is passed on as
  // it is, anything else becomes {} (Anthropic's input is always an object).
  thread_local simdjson::dom::parser parser;
  element value;
  if (arguments.empty() || parser.parse(arguments).get(value) != simdjson::SUCCESS || !value.is_object()) return "{}";
  return simdjson::to_string(value);
}

Expected<std::string> OpenAiToAnthropic(std::string_view completion, std::string_view message_id,
                                        std::string_view model, const TokenUsage& usage) {
  auto parsed = ParseJson(Parser(), completion);
  object root;
  array choices;
  object choice;
  object message;
  if (!parsed || parsed->get(root) != simdjson::SUCCESS || root["choices"].get(choices) != simdjson::SUCCESS ||
      choices.size() == 0 || choices.at(0).get(choice) != simdjson::SUCCESS ||
      choice["message"].get(message) != simdjson::SUCCESS) {
    return MakeError(ErrorCode::kUpstreamUnavailable, "the upstream's answer is not a chat completion");
  }
  JsonWriter json;
  json.BeginObject().Field("id", message_id);
  json.Field("type", "message").Field("role", "assistant").Key("content").BeginArray();
  std::string_view text;
  if (message["content"].get(text) == simdjson::SUCCESS && !text.empty()) {
    json.BeginObject().Field("type", "text").Field("text", text).EndObject();
  } else if (message["refusal"].get(text) == simdjson::SUCCESS && !text.empty()) {
    json.BeginObject().Field("type", "text").Field("text", text).EndObject();
  }
  array calls;
  if (message["tool_calls"].get(calls) == simdjson::SUCCESS) {
    for (element call : calls) {
      std::string_view id;
      std::string_view name;
      std::string_view arguments;
      object function;
      if (call["id"].get(id) != simdjson::SUCCESS || call["function"].get(function) != simdjson::SUCCESS ||
          function["name"].get(name) != simdjson::SUCCESS) {
        continue;
      }
      if (function["arguments"].get(arguments) != simdjson::SUCCESS) arguments = {};
      json.BeginObject().Field("type", "tool_use").Field("id", id).Field("name", name).Key("input");
      const std::string input = ToolInput(arguments);
      json.Raw(input).EndObject();
    }
  }
  json.EndArray().Field("model", model);
  std::string_view finish_reason;
  if (choice["finish_reason"].get(finish_reason) != simdjson::SUCCESS) finish_reason = "stop";
  json.Field("stop_reason", AnthropicStopReason(finish_reason)).Key("stop_sequence").Null();
  WriteUsage(json, usage);
  json.EndObject();
  return std::move(json).str();
}

void AnthropicStream::Begin(std::int64_t input_tokens_estimate, std::string& out) {
  JsonWriter json;
  json.BeginObject().Field("type", "message_start").Key("message").BeginObject();
  json.Field("id", id_).Field("type", "message").Field("role", "assistant").Key("content").BeginArray().EndArray();
  json.Field("model", model_).Key("stop_reason").Null().Key("stop_sequence").Null();
  WriteUsage(json, TokenUsage{.prompt_tokens = input_tokens_estimate});
  json.EndObject().EndObject();
  WriteEvent(out, "message_start", json.str());
  WriteEvent(out, "ping", R"({"type":"ping"})");
}

void AnthropicStream::StopOpen(std::string& out) {
  std::vector<int> open;
  if (text_block_ >= 0) open.push_back(text_block_);
  for (const auto& [tool, block] : tool_blocks_) open.push_back(block);
  std::sort(open.begin(), open.end());
  for (const int block : open) {
    WriteEvent(out, "content_block_stop", fmt::format(R"({{"type":"content_block_stop","index":{}}})", block));
  }
  text_block_ = -1;
  tool_blocks_.clear();
}

void AnthropicStream::Chunk(std::string_view data, std::string& out) {
  auto parsed = ParseJson(Parser(), data);
  object root;
  if (!parsed || parsed->get(root) != simdjson::SUCCESS) return;  // not a chunk: nothing to say
  element error_value;
  if (root["error"].get(error_value) == simdjson::SUCCESS && !error_value.is_null()) {
    std::string_view message = "the upstream failed mid-stream";
    object error;
    if (error_value.get(error) == simdjson::SUCCESS) {
      std::string_view text;
      if (error["message"].get(text) == simdjson::SUCCESS) message = text;
    }
    Fail(Error{ErrorCode::kUpstreamUnavailable, std::string(message)}, out);
    return;
  }
  array choices;
  if (root["choices"].get(choices) != simdjson::SUCCESS) return;  // the usage chunk: End reports it
  for (element choice_value : choices) {
    object choice;
    std::int64_t choice_index = 0;
    if (choice_value.get(choice) != simdjson::SUCCESS) continue;
    if (choice["index"].get(choice_index) == simdjson::SUCCESS && choice_index != 0) continue;  // n > 1: the first
    object delta;
    if (choice["delta"].get(delta) == simdjson::SUCCESS) {
      std::string_view text;
      if (delta["content"].get(text) == simdjson::SUCCESS && !text.empty()) {
        if (text_block_ < 0) {
          StopOpen(out);
          text_block_ = next_index_++;
          WriteEvent(
              out, "content_block_start",
              fmt::format(R"({{"type":"content_block_start","index":{},"content_block":{{"type":"text","text":""}}}})",
                          text_block_));
        }
        JsonWriter json;
        json.BeginObject().Field("type", "content_block_delta").Field("index", text_block_).Key("delta").BeginObject();
        json.Field("type", "text_delta").Field("text", text).EndObject().EndObject();
        WriteEvent(out, "content_block_delta", json.str());
      }
      array calls;
      if (delta["tool_calls"].get(calls) == simdjson::SUCCESS) {
        for (element call : calls) {
          std::int64_t tool = 0;
          if (call["index"].get(tool) != simdjson::SUCCESS) tool = 0;
          auto found = tool_blocks_.find(tool);
          if (found == tool_blocks_.end()) {
            std::string_view id;
            std::string_view name;
            if (call["id"].get(id) != simdjson::SUCCESS) id = {};
            if (call["function"]["name"].get(name) != simdjson::SUCCESS) name = {};
            StopOpen(out);  // blocks follow one another: the text (or previous call) ends here
            const int block = next_index_++;
            found = tool_blocks_.emplace(tool, block).first;
            JsonWriter json;
            json.BeginObject().Field("type", "content_block_start").Field("index", block).Key("content_block");
            json.BeginObject().Field("type", "tool_use").Field("id", id).Field("name", name).Key("input").BeginObject();
            json.EndObject().EndObject().EndObject();
            WriteEvent(out, "content_block_start", json.str());
          }
          std::string_view arguments;
          if (call["function"]["arguments"].get(arguments) == simdjson::SUCCESS && !arguments.empty()) {
            JsonWriter json;
            json.BeginObject().Field("type", "content_block_delta").Field("index", found->second).Key("delta");
            json.BeginObject()
                .Field("type", "input_json_delta")
                .Field("partial_json", arguments)
                .EndObject()
                .EndObject();
            WriteEvent(out, "content_block_delta", json.str());
          }
        }
      }
    }
    std::string_view finish_reason;
    if (choice["finish_reason"].get(finish_reason) == simdjson::SUCCESS) {
      finish_reason_ = std::string(finish_reason);
      StopOpen(out);
    }
  }
}

void AnthropicStream::End(const TokenUsage& usage, std::string& out) {
  StopOpen(out);
  JsonWriter json;
  json.BeginObject().Field("type", "message_delta").Key("delta").BeginObject();
  json.Field("stop_reason", AnthropicStopReason(finish_reason_)).Key("stop_sequence").Null().EndObject();
  WriteUsage(json, usage);
  json.EndObject();
  WriteEvent(out, "message_delta", json.str());
  WriteEvent(out, "message_stop", R"({"type":"message_stop"})");
}

void AnthropicStream::Fail(const Error& error, std::string& out) {
  WriteEvent(out, "error", AnthropicErrorBody(error));
}

}  // namespace chatd::gateway
