#include "gateway/completion_request.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <fmt/format.h>

#include "core/json.hpp"

namespace chatd::gateway {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

constexpr int kMaxChoices = 128;
constexpr std::size_t kMaxStops = 4;
constexpr std::size_t kMaxTools = 128;
constexpr std::size_t kMaxMetadata = 16;
constexpr std::int64_t kPerMessageTokens = 4;  // role and separators
constexpr std::int64_t kPerImageTokens = 85;   // a low-detail image, OpenAI's base cost
constexpr std::int64_t kPromptPriming = 3;

simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

Unexpected Invalid(std::string message, std::string param) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(param));
}

bool IsNumber(element value) {
  const element_type type = value.type();
  return type == element_type::DOUBLE || type == element_type::INT64 || type == element_type::UINT64;
}

std::optional<double> Number(element value) {
  if (!IsNumber(value)) return std::nullopt;
  double number = 0;
  if (value.get(number) != simdjson::SUCCESS || !std::isfinite(number)) return std::nullopt;
  return number;
}

// An integer, also when written 2.0 (JSON does not tell them apart; OpenAI accepts both).
std::optional<std::int64_t> Integer(element value) {
  std::int64_t integer = 0;
  if (value.get(integer) == simdjson::SUCCESS) return integer;
  double number = 0;
  if (value.type() == element_type::DOUBLE && value.get(number) == simdjson::SUCCESS && std::isfinite(number) &&
      number == std::floor(number) && std::abs(number) < 9e15) {
    return static_cast<std::int64_t>(number);
  }
  return std::nullopt;
}

std::string_view TypeName(element value) {
  switch (value.type()) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE: return "a number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "something else";
}

Unexpected WrongType(std::string_view param, std::string_view expected, element value) {
  return Invalid(fmt::format("Invalid type for '{}': expected {}, but got {}.", param, expected, TypeName(value)),
                 std::string(param));
}

// What the request tells us while it is checked: the prompt's size, for estimates.
struct Tally {
  std::size_t text_bytes = 0;
  std::int64_t images = 0;
  std::int64_t messages = 0;
};

Expected<void> CheckRequiredString(object parent, std::string_view key, const std::string& path, bool non_empty = false) {
  element value;
  const auto param = [&] { return path + "." + std::string(key); };  // for an error only
  if (parent[key].get(value) != simdjson::SUCCESS) {
    return Invalid(fmt::format("Missing required parameter: '{}'.", param()), param());
  }
  std::string_view text;
  if (value.get(text) != simdjson::SUCCESS) return WrongType(param(), "a string", value);
  if (non_empty && text.empty()) return Invalid(fmt::format("'{}' must not be empty.", param()), param());
  return {};
}

// One content part of a message: text, image_url, input_audio or file.
Expected<void> CheckPart(element part, const std::string& path, std::string_view role, Tally& tally) {
  object fields;
  if (part.get(fields) != simdjson::SUCCESS) return WrongType(path, "an object", part);
  element type_value;
  std::string_view type;
  if (fields["type"].get(type_value) != simdjson::SUCCESS) {
    return Invalid(fmt::format("Missing required parameter: '{}.type'.", path), path + ".type");
  }
  if (type_value.get(type) != simdjson::SUCCESS) return WrongType(path + ".type", "a string", type_value);
  const bool user = role == "user";
  if (type == "text") {
    if (auto checked = CheckRequiredString(fields, "text", path); !checked) return checked;
    std::string_view text;
    if (fields["text"].get(text) == simdjson::SUCCESS) tally.text_bytes += text.size();
    return {};
  }
  if (type == "refusal" && role == "assistant") return CheckRequiredString(fields, "refusal", path);
  if (type == "image_url" && user) {
    object image;
    element image_value;
    const std::string image_path = path + ".image_url";
    if (fields["image_url"].get(image_value) != simdjson::SUCCESS) {
      return Invalid(fmt::format("Missing required parameter: '{}'.", image_path), image_path);
    }
    if (image_value.get(image) != simdjson::SUCCESS) return WrongType(image_path, "an object", image_value);
    if (auto checked = CheckRequiredString(image, "url", image_path, true); !checked) return checked;
    element detail_value;
    if (image["detail"].get(detail_value) == simdjson::SUCCESS) {
      std::string_view detail;
      if (detail_value.get(detail) != simdjson::SUCCESS || (detail != "auto" && detail != "low" && detail != "high")) {
        return Invalid(fmt::format("Invalid value for '{}.detail': expected one of 'auto', 'low' or 'high'.", image_path),
                       image_path + ".detail");
      }
    }
    ++tally.images;
    return {};
  }
  if (type == "input_audio" && user) {
    object audio;
    element audio_value;
    const std::string audio_path = path + ".input_audio";
    if (fields["input_audio"].get(audio_value) != simdjson::SUCCESS || audio_value.get(audio) != simdjson::SUCCESS) {
      return Invalid(fmt::format("'{}' must be an object with 'data' and 'format'.", audio_path), audio_path);
    }
    if (auto checked = CheckRequiredString(audio, "data", audio_path); !checked) return checked;
    return CheckRequiredString(audio, "format", audio_path);
  }
  if (type == "file" && user) {
    element file;
    if (fields["file"].get(file) != simdjson::SUCCESS || file.type() != element_type::OBJECT) {
      return Invalid(fmt::format("'{}.file' must be an object.", path), path + ".file");
    }
    return {};
  }
  return Invalid(fmt::format("Invalid value for '{}.type': '{}' is not a content part a {} message may have.", path,
                             type, role),
                 path + ".type");
}

// `content`: a string or an array of parts. `required`: absent or null is an error.
Expected<void> CheckContent(object message, const std::string& path, std::string_view role, bool required,
                            Tally& tally) {
  element content;
  if (message["content"].get(content) != simdjson::SUCCESS || content.is_null()) {
    if (!required) return {};
    const std::string param = path + ".content";
    return Invalid(fmt::format("Missing required parameter: '{}'.", param), param);
  }
  std::string_view text;
  if (content.get(text) == simdjson::SUCCESS) {  // most messages: no path spelled out
    tally.text_bytes += text.size();
    return {};
  }
  const std::string param = path + ".content";
  array parts;
  if (content.get(parts) != simdjson::SUCCESS) return WrongType(param, "a string or an array of content parts", content);
  if (parts.size() == 0 && required) {
    return Invalid(fmt::format("Invalid '{}': empty array. Expected an array with minimum length 1.", param), param);
  }
  std::size_t index = 0;
  for (element part : parts) {
    if (auto checked = CheckPart(part, fmt::format("{}[{}]", param, index++), role, tally); !checked) return checked;
  }
  return {};
}

Expected<void> CheckToolCalls(element value, const std::string& param, Tally& tally) {
  array calls;
  if (value.get(calls) != simdjson::SUCCESS) return WrongType(param, "an array", value);
  std::size_t index = 0;
  for (element call : calls) {
    const std::string path = fmt::format("{}[{}]", param, index++);
    object fields;
    if (call.get(fields) != simdjson::SUCCESS) return WrongType(path, "an object", call);
    if (auto checked = CheckRequiredString(fields, "id", path); !checked) return checked;
    if (auto checked = CheckRequiredString(fields, "type", path); !checked) return checked;
    element function_value;
    object function;
    if (fields["function"].get(function_value) != simdjson::SUCCESS) {
      return Invalid(fmt::format("Missing required parameter: '{}.function'.", path), path + ".function");
    }
    if (function_value.get(function) != simdjson::SUCCESS) {
      return WrongType(path + ".function", "an object", function_value);
    }
    if (auto checked = CheckRequiredString(function, "name", path + ".function"); !checked) return checked;
    if (auto checked = CheckRequiredString(function, "arguments", path + ".function"); !checked) return checked;
    std::string_view arguments;
    if (function["arguments"].get(arguments) == simdjson::SUCCESS) tally.text_bytes += arguments.size();
  }
  return {};
}

Expected<void> CheckMessage(element value, const std::string& path, Tally& tally) {
  object message;
  if (value.get(message) != simdjson::SUCCESS) return WrongType(path, "an object", value);
  element role_value;
  std::string_view role;
  if (message["role"].get(role_value) != simdjson::SUCCESS) {
    return Invalid(fmt::format("Missing required parameter: '{}.role'.", path), path + ".role");
  }
  if (role_value.get(role) != simdjson::SUCCESS) return WrongType(path + ".role", "a string", role_value);
  element name;
  if (message["name"].get(name) == simdjson::SUCCESS && !name.is_string() && !name.is_null()) {
    return WrongType(path + ".name", "a string", name);
  }
  ++tally.messages;
  if (role == "system" || role == "developer" || role == "user") return CheckContent(message, path, role, true, tally);
  if (role == "assistant") {
    element tool_calls;
    const bool has_calls = message["tool_calls"].get(tool_calls) == simdjson::SUCCESS && !tool_calls.is_null();
    element function_call;
    const bool has_function_call =
        message["function_call"].get(function_call) == simdjson::SUCCESS && !function_call.is_null();
    if (has_calls) {
      if (auto checked = CheckToolCalls(tool_calls, path + ".tool_calls", tally); !checked) return checked;
    }
    // Content may be null or absent when the assistant called tools (or a function).
    return CheckContent(message, path, role, !has_calls && !has_function_call, tally);
  }
  if (role == "tool") {
    if (auto checked = CheckRequiredString(message, "tool_call_id", path); !checked) return checked;
    return CheckContent(message, path, role, true, tally);
  }
  if (role == "function") {  // deprecated, still accepted by OpenAI
    if (auto checked = CheckRequiredString(message, "name", path); !checked) return checked;
    return CheckContent(message, path, role, false, tally);
  }
  return Invalid(fmt::format("Invalid value: '{}'. Supported values are: 'system', 'developer', 'user', 'assistant', "
                             "'tool', and 'function'.",
                             role),
                 path + ".role");
}

bool ValidFunctionName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

Expected<void> CheckTools(element value) {
  array tools;
  if (value.get(tools) != simdjson::SUCCESS) return WrongType("tools", "an array", value);
  if (tools.size() > kMaxTools) {
    return Invalid(fmt::format("Invalid 'tools': array too long. Expected at most {} tools.", kMaxTools), "tools");
  }
  std::size_t index = 0;
  for (element tool : tools) {
    const std::string path = fmt::format("tools[{}]", index++);
    object fields;
    if (tool.get(fields) != simdjson::SUCCESS) return WrongType(path, "an object", tool);
    std::string_view type;
    if (fields["type"].get(type) != simdjson::SUCCESS) {
      return Invalid(fmt::format("Missing required parameter: '{}.type'.", path), path + ".type");
    }
    if (type != "function") continue;  // other tool types (custom, ...) are the upstream's to judge
    element function_value;
    object function;
    if (fields["function"].get(function_value) != simdjson::SUCCESS) {
      return Invalid(fmt::format("Missing required parameter: '{}.function'.", path), path + ".function");
    }
    if (function_value.get(function) != simdjson::SUCCESS) return WrongType(path + ".function", "an object", function_value);
    std::string_view name;
    if (function["name"].get(name) != simdjson::SUCCESS || !ValidFunctionName(name)) {
      return Invalid(fmt::format("Invalid '{}.function.name': expected a string of 1 to 64 letters, digits, '_' or '-'.",
                                 path),
                     path + ".function.name");
    }
    element parameters;
    if (function["parameters"].get(parameters) == simdjson::SUCCESS && !parameters.is_object()) {
      return WrongType(path + ".function.parameters", "an object (a JSON Schema)", parameters);
    }
  }
  return {};
}

Expected<void> CheckToolChoice(element value) {
  std::string_view mode;
  if (value.get(mode) == simdjson::SUCCESS) {
    if (mode == "none" || mode == "auto" || mode == "required") return {};
    return Invalid(fmt::format("Invalid value: '{}'. Supported values are: 'none', 'auto', and 'required'.", mode),
                   "tool_choice");
  }
  if (!value.is_object()) return WrongType("tool_choice", "a string or an object", value);
  return {};  // a named tool or allowed_tools: the upstream knows its forms
}

Expected<void> CheckResponseFormat(element value) {
  object format;
  if (value.get(format) != simdjson::SUCCESS) return WrongType("response_format", "an object", value);
  std::string_view type;
  if (format["type"].get(type) != simdjson::SUCCESS) {
    return Invalid("Missing required parameter: 'response_format.type'.", "response_format.type");
  }
  if (type == "text" || type == "json_object") return {};
  if (type == "json_schema") {
    element schema_value;
    object schema;
    if (format["json_schema"].get(schema_value) != simdjson::SUCCESS) {
      return Invalid("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema");
    }
    if (schema_value.get(schema) != simdjson::SUCCESS) {
      return WrongType("response_format.json_schema", "an object", schema_value);
    }
    return CheckRequiredString(schema, "name", "response_format.json_schema", true);
  }
  return Invalid(fmt::format("Invalid value: '{}'. Supported values are: 'text', 'json_object', and 'json_schema'.", type),
                 "response_format.type");
}

Expected<std::optional<double>> RangeField(object root, std::string_view key, double min, double max) {
  element value;
  if (root[key].get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<double>{};
  const auto number = Number(value);
  if (!number) return WrongType(key, "a number", value);
  if (*number < min || *number > max) {
    return Invalid(fmt::format("Invalid '{}': {} is out of range. Expected a value between {} and {}.", key,
                               simdjson::to_string(value), min, max),
                   std::string(key));
  }
  return number;
}

Expected<std::optional<std::int64_t>> IntegerField(object root, std::string_view key, std::int64_t min, std::int64_t max) {
  element value;
  if (root[key].get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<std::int64_t>{};
  const auto integer = Integer(value);
  if (!integer) return WrongType(key, "an integer", value);
  if (*integer < min || *integer > max) {
    if (min == 1 && max == INT64_MAX) {
      return Invalid(fmt::format("Invalid '{}': integer below minimum value. Expected a value >= 1, but got {} instead.",
                                 key, *integer),
                     std::string(key));
    }
    return Invalid(fmt::format("Invalid '{}': {} is out of range. Expected a value between {} and {}.", key, *integer,
                               min, max),
                   std::string(key));
  }
  return integer;
}

Expected<std::optional<bool>> BoolField(object root, std::string_view key) {
  element value;
  if (root[key].get(value) != simdjson::SUCCESS || value.is_null()) return std::optional<bool>{};
  bool flag = false;
  if (value.get(flag) != simdjson::SUCCESS) return WrongType(key, "a boolean", value);
  return flag;
}

Expected<void> CheckStop(element value) {
  if (value.is_null() || value.is_string()) return {};
  array stops;
  if (value.get(stops) != simdjson::SUCCESS) return WrongType("stop", "a string or an array of strings", value);
  if (stops.size() > kMaxStops) {
    return Invalid(fmt::format("Invalid 'stop': array too long. Expected an array with at most {} items.", kMaxStops),
                   "stop");
  }
  std::size_t index = 0;
  for (element stop : stops) {
    if (!stop.is_string()) return WrongType(fmt::format("stop[{}]", index), "a string", stop);
    ++index;
  }
  return {};
}

Expected<void> CheckMetadata(element value) {
  if (value.is_null()) return {};
  object metadata;
  if (value.get(metadata) != simdjson::SUCCESS) return WrongType("metadata", "an object", value);
  if (metadata.size() > kMaxMetadata) {
    return Invalid(fmt::format("Invalid 'metadata': at most {} keys are allowed.", kMaxMetadata), "metadata");
  }
  for (auto [key, item] : metadata) {
    if (!item.is_string()) return WrongType(fmt::format("metadata.{}", key), "a string", item);
  }
  return {};
}

void AppendMember(std::string& out, std::string_view key, std::string_view json) {
  if (!out.empty()) out += ',';
  out += '"';
  AppendJsonEscaped(out, key);
  out += "\":";
  out += json;
}

// The top-level members of `object`, a JSON object the DOM parse has validated, as the
// client wrote them: `each(key, value)` gets the key without its quotes and the value's
// exact bytes — no re-serialising (simdjson::to_string builds each value anew, a few
// allocations per member on every request). False, after calling `each` for the members
// before it, at a key written with escapes: its bytes are not the key.
template <typename Each>
bool ForEachMember(std::string_view object, Each&& each) {
  std::size_t i = object.find('{') + 1;
  const auto space = [&] {
    while (i < object.size() && (object[i] == ' ' || object[i] == '\n' || object[i] == '\r' || object[i] == '\t')) ++i;
  };
  const auto skip_string = [&] {  // from its opening quote to past its closing one
    for (++i; i < object.size() && object[i] != '"'; ++i) {
      if (object[i] == '\\') ++i;
    }
    ++i;
  };
  while (true) {
    space();
    if (i < object.size() && object[i] == ',') ++i;
    space();
    if (i >= object.size() || object[i] != '"') return true;  // the closing brace
    const std::size_t key_begin = i + 1;
    skip_string();
    const std::string_view key = object.substr(key_begin, i - 1 - key_begin);
    if (key.find('\\') != std::string_view::npos) return false;
    space();
    ++i;  // the colon
    space();
    const std::size_t value_begin = i;
    std::size_t depth = 0;
    while (i < object.size()) {
      const char c = object[i];
      if (c == '"') {
        skip_string();
        if (depth == 0) break;
      } else if (c == '{' || c == '[') {
        ++depth;
        ++i;
      } else if (c == '}' || c == ']') {
        if (depth == 0) break;  // the object's own end, after a number or literal
        ++i;
        if (--depth == 0) break;
      } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
        break;
      } else {
        ++i;
      }
    }
    each(key, object.substr(value_begin, i - value_begin));
  }
}

}  // namespace

std::int64_t EstimateTokens(std::size_t bytes) { return static_cast<std::int64_t>((bytes + 3) / 4); }

Expected<PreparedCompletion> PrepareCompletion(std::string_view body) {
  auto parsed = ParseJson(Parser(), body);
  if (!parsed) return Unexpected{std::move(parsed).error()};
  object root;
  if (parsed->get(root) != simdjson::SUCCESS) {
    return Invalid("The request body must be a JSON object.", "");
  }
  for (const std::string_view field : kUpstreamOverrideFields) {
    element ignored;
    if (root[field].get(ignored) == simdjson::SUCCESS) {
      return Invalid(fmt::format("'{}' is not accepted: chatd's upstreams and their credentials are set by the operator, "
                                 "not per request.",
                                 field),
                     std::string(field));
    }
  }

  PreparedCompletion prepared;
  element model;
  if (root["model"].get(model) != simdjson::SUCCESS) return Invalid("Missing required parameter: 'model'.", "model");
  std::string_view model_name;
  if (model.get(model_name) != simdjson::SUCCESS) return WrongType("model", "a string", model);
  if (model_name.empty()) return Invalid("Invalid 'model': empty string.", "model");
  prepared.model = std::string(model_name);

  element messages_value;
  if (root["messages"].get(messages_value) != simdjson::SUCCESS) {
    return Invalid("Missing required parameter: 'messages'.", "messages");
  }
  array messages;
  if (messages_value.get(messages) != simdjson::SUCCESS) return WrongType("messages", "an array", messages_value);
  if (messages.size() == 0) {
    return Invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array "
                   "instead.",
                   "messages");
  }
  Tally tally;
  std::size_t index = 0;
  for (element message : messages) {
    if (auto checked = CheckMessage(message, "messages[" + std::to_string(index++) + "]", tally); !checked) {
      return Unexpected{std::move(checked).error()};
    }
  }

  auto stream = BoolField(root, "stream");
  if (!stream) return Unexpected{std::move(stream).error()};
  prepared.stream = stream->value_or(false);
  element stream_options;
  const bool has_stream_options = root["stream_options"].get(stream_options) == simdjson::SUCCESS &&
                                  !stream_options.is_null();
  if (has_stream_options) {
    if (!prepared.stream) {
      return Invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options");
    }
    object options;
    if (stream_options.get(options) != simdjson::SUCCESS) return WrongType("stream_options", "an object", stream_options);
    element include_usage;
    if (options["include_usage"].get(include_usage) == simdjson::SUCCESS && !include_usage.is_null()) {
      bool flag = false;
      if (include_usage.get(flag) != simdjson::SUCCESS) {
        return WrongType("stream_options.include_usage", "a boolean", include_usage);
      }
      prepared.client_wants_usage = flag;
    }
  }

  if (auto n = IntegerField(root, "n", 1, kMaxChoices); !n) {
    return Unexpected{std::move(n).error()};
  } else if (*n) {
    prepared.n = static_cast<int>(**n);
  }
  auto temperature = RangeField(root, "temperature", 0, 2);
  if (!temperature) return Unexpected{std::move(temperature).error()};
  prepared.temperature = *temperature;
  if (auto checked = RangeField(root, "top_p", 0, 1); !checked) return Unexpected{std::move(checked).error()};
  if (auto checked = RangeField(root, "presence_penalty", -2, 2); !checked) return Unexpected{std::move(checked).error()};
  if (auto checked = RangeField(root, "frequency_penalty", -2, 2); !checked) return Unexpected{std::move(checked).error()};
  auto max_tokens = IntegerField(root, "max_tokens", 1, INT64_MAX);
  if (!max_tokens) return Unexpected{std::move(max_tokens).error()};
  auto max_completion_tokens = IntegerField(root, "max_completion_tokens", 1, INT64_MAX);
  if (!max_completion_tokens) return Unexpected{std::move(max_completion_tokens).error()};
  prepared.max_tokens = *max_completion_tokens ? *max_completion_tokens : *max_tokens;
  if (auto seed = IntegerField(root, "seed", INT64_MIN, INT64_MAX); !seed) return Unexpected{std::move(seed).error()};
  auto logprobs = BoolField(root, "logprobs");
  if (!logprobs) return Unexpected{std::move(logprobs).error()};
  auto top_logprobs = IntegerField(root, "top_logprobs", 0, 20);
  if (!top_logprobs) return Unexpected{std::move(top_logprobs).error()};
  if (*top_logprobs && !logprobs->value_or(false)) {
    return Invalid("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs");
  }
  if (auto parallel = BoolField(root, "parallel_tool_calls"); !parallel) return Unexpected{std::move(parallel).error()};
  element value;
  if (root["stop"].get(value) == simdjson::SUCCESS) {
    if (auto checked = CheckStop(value); !checked) return Unexpected{std::move(checked).error()};
  }
  bool has_tools = false;
  if (root["tools"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (auto checked = CheckTools(value); !checked) return Unexpected{std::move(checked).error()};
    has_tools = true;
  }
  if (root["tool_choice"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (auto checked = CheckToolChoice(value); !checked) return Unexpected{std::move(checked).error()};
    std::string_view mode;
    if (!has_tools && !(value.get(mode) == simdjson::SUCCESS && mode == "none")) {
      return Invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                     "tool_choice");
    }
  }
  if (root["response_format"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (auto checked = CheckResponseFormat(value); !checked) return Unexpected{std::move(checked).error()};
  }
  if (root["user"].get(value) == simdjson::SUCCESS && !value.is_null() && !value.is_string()) {
    return WrongType("user", "a string", value);
  }
  if (root["metadata"].get(value) == simdjson::SUCCESS) {
    if (auto checked = CheckMetadata(value); !checked) return Unexpected{std::move(checked).error()};
  }

  // The upstream's fields: the client's, in its order, minus "model"; on a stream, usage is
  // asked for whatever the client said (the client's other stream options kept).
  std::string fields;
  fields.reserve(body.size() + 48);
  bool wrote_stream_options = false;
  const auto add = [&](std::string_view key, std::string_view value) {
    if (key == "model") return;
    if (key == "stream_options" && prepared.stream) {
      std::string options;  // the client's other stream options, kept
      object client_options;
      if (root["stream_options"].get(client_options) == simdjson::SUCCESS) {
        for (auto [option, option_value] : client_options) {
          if (option != "include_usage") AppendMember(options, option, simdjson::to_string(option_value));
        }
      }
      if (!options.empty()) options += ',';
      AppendMember(fields, key, "{" + options + R"("include_usage":true})");
      wrote_stream_options = true;
      return;
    }
    AppendMember(fields, key, value);
  };
  if (!ForEachMember(body, add)) {  // a key written with escapes: the DOM's members, re-serialised
    fields.clear();
    wrote_stream_options = false;
    for (auto [key, member] : root) add(key, simdjson::to_string(member));
  }
  if (prepared.stream && !wrote_stream_options) AppendMember(fields, "stream_options", R"({"include_usage":true})");
  prepared.fields = std::make_shared<const std::string>(std::move(fields));
  prepared.prompt_tokens_estimate = kPromptPriming + tally.messages * kPerMessageTokens +
                                    EstimateTokens(tally.text_bytes) + tally.images * kPerImageTokens;
  return prepared;
}

}  // namespace chatd::gateway
