// A fast, scriptable OpenAI-compatible upstream for benchmarks and end-to-end tests,
// built on chatd's own http module.
//
//   mock_upstream [--host 127.0.0.1] [--port 0] [--workers 1] [--chunks 20]
//                 [--interval-ms 0] [--prompt-tokens 12]
//
// Endpoints: POST /v1/chat/completions (JSON, or SSE with "stream": true), GET /v1/models,
// POST /v1/embeddings. Tests steer it through:
//   POST /_mock/script  [{"status":500}, {"status":429,"retry_after":1},
//                        {"stall_after":3}, {"chunks":5,"interval_ms":50}, {"delay_ms":200},
//                        {"error_after":2}, {"break_after":2}, {"no_usage":true},
//                        {"tool_arguments":"{\"city\":\"Paris\"}"}]
//     each entry shapes one later completion request, in order: error_after sends that
//     many chunks, then an error event and ends the body; break_after ends the body after
//     that many chunks (no finish_reason, no [DONE]); no_usage leaves usage out even when
//     asked; tool_arguments are the arguments of a tool call (below);
//   GET  /_mock/stats   {"requests","active_streams","completed_streams","aborted_streams",
//                        "abandoned","models"}  (abandoned: completion requests whose client
//                        closed the connection before the answer ended, counted at once;
//                        models: the "model" of each completion request, in order)
//   GET  /_mock/last_request  the body of the last completion request, as received
//   POST /_mock/reset   clears the script and the counters.
// A request with `tools` whose last message is not a tool result is answered with a call
// of the first tool (finish_reason "tool_calls"); one whose last message is a tool result
// is answered "tool said: <its content>". A request with response_format json_object or
// json_schema is answered with a JSON object. A client that disconnects mid-stream is
// counted in aborted_streams at once (the connection is watched, not only written to).
// It prints one JSON line {"msg":"listening","port":N} on stderr when ready.
#include <array>
#include <atomic>
#include <cmath>
#include <csignal>
#include <deque>
#include <mutex>
#include <optional>

#include <CLI/CLI.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "http/router.hpp"
#include "http/server.hpp"

namespace chatd::mock {
namespace {

struct Step {
  int status = 200;
  int retry_after = 0;
  int chunks = -1;       // -1: the default
  int interval_ms = -1;  // -1: the default
  int stall_after = -1;  // send this many chunks, then nothing until the client leaves
  int delay_ms = 0;      // before the first byte
  int error_after = -1;  // send this many chunks, then an error event, and end
  int break_after = -1;  // send this many chunks, then end the body abruptly
  bool no_usage = false;
  std::string tool_arguments = "{}";
};

struct Options {
  int chunks = 20;
  int interval_ms = 0;
  int prompt_tokens = 12;
};

class Upstream {
 public:
  explicit Upstream(Options options) : options_(options) {}

  Task<http::Response> Completions(http::Request& request);
  Task<http::Response> Models(http::Request&) {
    co_return http::Response::Json(
        200, R"({"object":"list","data":[{"id":"mock-model","object":"model","created":1700000000,"owned_by":"mock"},)"
             R"({"id":"mock-embedding","object":"model","created":1700000000,"owned_by":"mock"}]})");
  }
  Task<http::Response> Embeddings(http::Request& request);
  Task<http::Response> Script(http::Request& request);
  Task<http::Response> Stats(http::Request&) {
    JsonWriter json;
    json.BeginObject()
        .Field("requests", static_cast<std::int64_t>(requests_.load()))
        .Field("active_streams", static_cast<std::int64_t>(active_streams_.load()))
        .Field("completed_streams", static_cast<std::int64_t>(completed_streams_.load()))
        .Field("aborted_streams", static_cast<std::int64_t>(aborted_streams_.load()))
        .Field("abandoned", static_cast<std::int64_t>(abandoned_.load()))
        .Key("models")
        .BeginArray();
    {
      std::lock_guard lock(mutex_);
      for (const std::string& model : models_) json.String(model);
    }
    json.EndArray().EndObject();
    co_return http::Response::Json(200, std::move(json).str());
  }
  Task<http::Response> LastRequest(http::Request&) {
    std::lock_guard lock(mutex_);
    co_return http::Response::Json(200, last_request_.empty() ? std::string("null") : last_request_);
  }
  Task<http::Response> Reset(http::Request&) {
    std::lock_guard lock(mutex_);
    script_.clear();
    last_request_.clear();
    models_.clear();
    requests_ = active_streams_ = completed_streams_ = aborted_streams_ = abandoned_ = 0;
    co_return http::Response::NoContent();
  }

 private:
  Step NextStep(std::string model, const std::string& body) {
    std::lock_guard lock(mutex_);
    last_request_ = body;
    models_.push_back(std::move(model));
    if (models_.size() > kMaxModels) models_.pop_front();
    if (script_.empty()) return Step{};
    Step step = script_.front();
    script_.pop_front();
    return step;
  }

  Options options_;
  std::mutex mutex_;
  std::deque<Step> script_;
  std::deque<std::string> models_;  // bounded: the last kMaxModels requested
  std::string last_request_;
  static constexpr std::size_t kMaxModels = 1000;
  std::atomic<std::uint64_t> requests_{0}, active_streams_{0}, completed_streams_{0}, aborted_streams_{0};
  std::atomic<std::uint64_t> abandoned_{0};  // completion requests whose client left before the answer ended
};

simdjson::dom::parser& Parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// A pause the client's disconnect cuts short.
Task<void> Pause(asio::steady_timer& timer, int ms) {
  if (ms <= 0) co_return;
  timer.expires_after(std::chrono::milliseconds(ms));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
}

// What the request asks of the answer besides text.
struct Shape {
  std::string tool_name;    // non-empty: answer with a call of this tool
  std::string tool_result;  // the last message was a tool result: its content
  bool has_tool_result = false;
  bool json = false;
};

Shape ReadShape(simdjson::dom::element body) {
  Shape shape;
  simdjson::dom::array messages;
  if (body["messages"].get(messages) == simdjson::SUCCESS && messages.size() > 0) {
    simdjson::dom::element last = messages.at(messages.size() - 1).value();
    std::string_view role;
    std::string_view content;
    if (last["role"].get(role) == simdjson::SUCCESS && role == "tool") {
      shape.has_tool_result = true;
      if (last["content"].get(content) == simdjson::SUCCESS) shape.tool_result = std::string(content);
    }
  }
  simdjson::dom::array tools;
  std::string_view name;
  if (!shape.has_tool_result && body["tools"].get(tools) == simdjson::SUCCESS && tools.size() > 0 &&
      tools.at(0)["function"]["name"].get(name) == simdjson::SUCCESS) {
    shape.tool_name = std::string(name);
  }
  std::string_view format;
  if (body["response_format"]["type"].get(format) == simdjson::SUCCESS) {
    shape.json = format == "json_object" || format == "json_schema";
  }
  return shape;
}

std::string ChunkJson(std::string_view id, std::string_view model, std::string_view delta_json,
                      std::string_view finish_reason) {
  JsonWriter json;
  json.BeginObject().Field("id", id).Field("object", "chat.completion.chunk").Field("created", 1700000000);
  json.Field("model", model).Key("choices").BeginArray().BeginObject().Field("index", 0);
  json.Key("delta").Raw(delta_json);
  json.Key("finish_reason");
  if (finish_reason.empty()) json.Null(); else json.String(finish_reason);
  json.EndObject().EndArray().EndObject();
  return std::move(json).str();
}

Task<http::Response> Upstream::Completions(http::Request& request) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto body = ParseJson(Parser(), request.body);
  if (!body) co_return http::Response::FromError(body.error());
  bool stream = false;
  if ((*body)["stream"].get(stream)) {}  // optional field: keep the default
  std::string_view model = "mock-model";
  if ((*body)["model"].get(model)) {}  // optional field: keep the default
  bool include_usage = false;
  if ((*body)["stream_options"]["include_usage"].get(include_usage)) {}  // optional field: keep the default
  const std::string model_name(model);
  const Shape shape = ReadShape(*body);

  const Step step = NextStep(model_name, request.body);
  // Watch the client from the start, so one that leaves while we delay is seen at once.
  asio::steady_timer pause(co_await asio::this_coro::executor);
  bool gone = false;
  request.stream->WatchClient([this, &gone, &pause] {
    gone = true;
    abandoned_.fetch_add(1);
    pause.cancel();
  });
  co_await Pause(pause, step.delay_ms);
  if (gone) co_return http::Response{};
  if (step.status != 200) {
    auto response = http::Response::FromError(step.status == 429 ? ErrorCode::kRateLimited
                                              : step.status >= 500 ? ErrorCode::kInternal
                                                                   : ErrorCode::kInvalidArgument,
                                              fmt::format("mock upstream failure {}", step.status));
    response.status = step.status;
    if (step.retry_after > 0) response.AddHeader("Retry-After", std::to_string(step.retry_after));
    co_return response;
  }
  const int chunks = step.chunks >= 0 ? step.chunks : options_.chunks;
  const int interval = step.interval_ms >= 0 ? step.interval_ms : options_.interval_ms;
  const std::string id = "chatcmpl-" + NewUuidV7();
  const bool usage = !step.no_usage;
  const std::string call_id = "call_" + NewUuidV7().substr(24);

  // The answer's text: tokens, a JSON object in JSON mode, or the echo of a tool result.
  std::vector<std::string> pieces;
  if (shape.has_tool_result) {
    pieces = {"tool said: ", shape.tool_result};
  } else if (shape.json) {
    pieces.push_back("{\"ok\":true,\"tokens\":[");
    for (int i = 0; i < chunks; ++i) pieces.push_back(fmt::format("{}\"tok{}\"", i > 0 ? "," : "", i));
    pieces.push_back("]}");
  } else {
    for (int i = 0; i < chunks; ++i) pieces.push_back(fmt::format("tok{} ", i));
  }
  const bool tool_call = !shape.tool_name.empty();
  const std::string finish = tool_call ? "tool_calls" : "stop";

  if (!stream) {
    std::string text;
    for (const auto& piece : pieces) text += piece;
    JsonWriter json;
    json.BeginObject().Field("id", id).Field("object", "chat.completion").Field("created", 1700000000);
    json.Field("model", model_name).Key("choices").BeginArray().BeginObject().Field("index", 0);
    json.Key("message").BeginObject().Field("role", "assistant");
    if (tool_call) {
      json.Key("content").Null().Key("tool_calls").BeginArray().BeginObject().Field("id", call_id);
      json.Field("type", "function").Key("function").BeginObject().Field("name", shape.tool_name);
      json.Field("arguments", step.tool_arguments).EndObject().EndObject().EndArray();
    } else {
      json.Field("content", text);
    }
    json.EndObject().Field("finish_reason", finish).EndObject().EndArray();
    if (usage) {
      json.Key("usage").BeginObject().Field("prompt_tokens", options_.prompt_tokens).Field("completion_tokens", chunks);
      json.Field("total_tokens", options_.prompt_tokens + chunks).EndObject();
    }
    json.EndObject();
    co_return http::Response::Json(200, std::move(json).str());
  }

  http::Response head(200, {}, "text/event-stream");
  head.AddHeader("Cache-Control", "no-cache");
  active_streams_.fetch_add(1);
  struct Active {
    std::atomic<std::uint64_t>& gauge;
    ~Active() { gauge.fetch_sub(1); }
  } active{active_streams_};
  auto write = [&](std::string data) -> Task<bool> {
    if (gone) co_return false;
    const bool written = co_await request.stream->Write(data);
    co_return written && !gone;
  };
  // GCC 12 miscompiles co_await inside && and ?:, so each step is its own statement.
  bool ok = co_await request.stream->Begin(std::move(head));
  if (ok && tool_call) {
    JsonWriter delta;
    delta.BeginObject().Field("role", "assistant").Key("content").Null().Key("tool_calls").BeginArray();
    delta.BeginObject().Field("index", 0).Field("id", call_id).Field("type", "function").Key("function");
    delta.BeginObject().Field("name", shape.tool_name).Field("arguments", "").EndObject().EndObject().EndArray();
    delta.EndObject();
    std::string event = "data: " + ChunkJson(id, model_name, delta.str(), "") + "\n\n";
    ok = co_await write(std::move(event));
    // The arguments in two pieces, as upstreams stream them.
    const std::string& arguments = step.tool_arguments;
    const std::size_t half = arguments.size() / 2;
    const std::array<std::string, 2> parts{arguments.substr(0, half), arguments.substr(half)};
    for (const std::string& part : parts) {
      if (!ok) break;
      co_await Pause(pause, interval);
      JsonWriter more;
      more.BeginObject().Key("tool_calls").BeginArray().BeginObject().Field("index", 0).Key("function");
      more.BeginObject().Field("arguments", part).EndObject().EndObject().EndArray().EndObject();
      std::string next = "data: " + ChunkJson(id, model_name, more.str(), "") + "\n\n";
      ok = co_await write(std::move(next));
    }
  } else if (ok) {
    std::string event = "data: " + ChunkJson(id, model_name, R"({"role":"assistant","content":""})", "") + "\n\n";
    ok = co_await write(std::move(event));
  }
  for (std::size_t i = 0; ok && !tool_call && i < pieces.size(); ++i) {
    const int sent = static_cast<int>(i);
    if (step.stall_after >= 0 && sent >= step.stall_after) {
      // Stall: keep the connection open, sending nothing, until the client gives up.
      while (ok) {
        std::string keep_alive = ": \n\n";
        ok = co_await write(std::move(keep_alive));
        if (ok) co_await Pause(pause, 1000);
      }
      break;
    }
    if (step.error_after >= 0 && sent >= step.error_after) {
      std::string event = R"(data: {"error":{"message":"mock upstream failed mid-stream","type":"server_error","param":null,"code":"internal_error"}})" "\n\n";
      co_await write(std::move(event));
      aborted_streams_.fetch_add(1);
      co_return http::Response{};
    }
    if (step.break_after >= 0 && sent >= step.break_after) {
      aborted_streams_.fetch_add(1);
      co_return http::Response{};  // the body ends here: no finish_reason, no [DONE]
    }
    co_await Pause(pause, interval);
    JsonWriter delta;
    delta.BeginObject().Field("content", pieces[i]).EndObject();
    std::string event = "data: " + ChunkJson(id, model_name, delta.str(), "") + "\n\n";
    ok = co_await write(std::move(event));
  }
  if (ok) {
    std::string last = "data: " + ChunkJson(id, model_name, "{}", finish) + "\n\n";
    ok = co_await write(std::move(last));
  }
  if (ok && include_usage && usage) {
    std::string usage_event = fmt::format(
        "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"{}\","
        "\"choices\":[],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\n",
        id, model_name, options_.prompt_tokens, chunks, options_.prompt_tokens + chunks);
    ok = co_await write(std::move(usage_event));
  }
  if (ok) {
    std::string done = "data: [DONE]\n\n";
    ok = co_await write(std::move(done));
  }
  (ok ? completed_streams_ : aborted_streams_).fetch_add(1);
  co_return http::Response{};
}

Task<http::Response> Upstream::Embeddings(http::Request& request) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto body = ParseJson(Parser(), request.body);
  if (!body) co_return http::Response::FromError(body.error());
  std::vector<std::string_view> inputs;
  simdjson::dom::element input;
  if ((*body)["input"].get(input) != simdjson::SUCCESS) {
    co_return http::Response::FromError(ErrorCode::kInvalidArgument, "input is required", "input");
  }
  if (input.is_string()) {
    inputs.push_back(input.get_string().value());
  } else if (input.is_array()) {
    for (auto item : input.get_array()) {
      std::string_view text;
      if (item.get(text) == simdjson::SUCCESS) inputs.push_back(text);
    }
  }
  std::int64_t dimensions = 8;
  if ((*body)["dimensions"].get(dimensions)) {}  // optional field: keep the default
  JsonWriter json;
  json.BeginObject().Field("object", "list").Key("data").BeginArray();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    json.BeginObject().Field("object", "embedding").Field("index", static_cast<std::int64_t>(i)).Key("embedding").BeginArray();
    const std::size_t seed = std::hash<std::string_view>{}(inputs[i]);
    for (std::int64_t d = 0; d < dimensions; ++d) json.Double(std::sin(static_cast<double>(seed % 1000 + d)));
    json.EndArray().EndObject();
  }
  json.EndArray().Field("model", "mock-embedding");
  json.Key("usage").BeginObject().Field("prompt_tokens", static_cast<std::int64_t>(inputs.size()));
  json.Field("total_tokens", static_cast<std::int64_t>(inputs.size())).EndObject().EndObject();
  co_return http::Response::Json(200, std::move(json).str());
}

Task<http::Response> Upstream::Script(http::Request& request) {
  auto body = ParseJson(Parser(), request.body);
  if (!body) co_return http::Response::FromError(body.error());
  simdjson::dom::array steps;
  if (body->get(steps) != simdjson::SUCCESS) {
    co_return http::Response::FromError(ErrorCode::kInvalidArgument, "expected a JSON array of steps");
  }
  std::deque<Step> parsed;
  for (auto entry : steps) {
    Step step;
    auto read = [&](const char* key, int& out) {
      std::int64_t value = 0;
      if (entry[key].get(value) == simdjson::SUCCESS) out = static_cast<int>(value);
    };
    read("status", step.status);
    read("retry_after", step.retry_after);
    read("chunks", step.chunks);
    read("interval_ms", step.interval_ms);
    read("stall_after", step.stall_after);
    read("delay_ms", step.delay_ms);
    read("error_after", step.error_after);
    read("break_after", step.break_after);
    bool no_usage = false;
    if (entry["no_usage"].get(no_usage) == simdjson::SUCCESS) step.no_usage = no_usage;
    std::string_view arguments;
    if (entry["tool_arguments"].get(arguments) == simdjson::SUCCESS) step.tool_arguments = std::string(arguments);
    parsed.push_back(step);
  }
  std::lock_guard lock(mutex_);
  for (auto& step : parsed) script_.push_back(step);
  co_return http::Response::NoContent();
}

}  // namespace
}  // namespace chatd::mock

int main(int argc, char** argv) {
  using namespace chatd;
  CLI::App cli{"mock OpenAI-compatible upstream"};
  http::ServerConfig config;
  config.port = 0;
  config.io_threads = 1;
  config.access_log = false;
  config.keepalive_timeout = std::chrono::seconds(300);
  mock::Options options;
  int port = 0;
  cli.add_option("--host", config.host);
  cli.add_option("--port", port)->check(CLI::Range(0, 65535));
  cli.add_option("--workers", config.io_threads)->check(CLI::Range(1, 64));
  cli.add_option("--chunks", options.chunks)->check(CLI::Range(0, 100000));
  cli.add_option("--interval-ms", options.interval_ms)->check(CLI::Range(0, 600000));
  cli.add_option("--prompt-tokens", options.prompt_tokens);
  CLI11_PARSE(cli, argc, argv);
  config.port = static_cast<std::uint16_t>(port);

  log::Init({.level = "info", .format = "json"});
  mock::Upstream upstream(options);
  http::Router router;
  using http::Method;
  const http::RouteOptions large{.body_limit = 64 * 1024 * 1024};
  router.Add(Method::kPost, "/v1/chat/completions", [&](http::Request& r) { return upstream.Completions(r); }, large);
  router.Add(Method::kGet, "/v1/models", [&](http::Request& r) { return upstream.Models(r); });
  router.Add(Method::kPost, "/v1/embeddings", [&](http::Request& r) { return upstream.Embeddings(r); }, large);
  router.Add(Method::kPost, "/_mock/script", [&](http::Request& r) { return upstream.Script(r); });
  router.Add(Method::kGet, "/_mock/stats", [&](http::Request& r) { return upstream.Stats(r); });
  router.Add(Method::kPost, "/_mock/reset", [&](http::Request& r) { return upstream.Reset(r); });
  router.Add(Method::kGet, "/_mock/last_request", [&](http::Request& r) { return upstream.LastRequest(r); });

  metrics::Registry registry;
  http::Server server(config, router, {}, registry);
  if (auto listening = server.Listen(); !listening) {
    log::Error("cannot listen", {{"error", listening.error().message}});
    log::Shutdown();
    return 1;
  }
  log::Info("listening", {{"address", config.host}, {"port", server.port()}});
  asio::signal_set signals(server.main_context(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) server.Shutdown();
  });
  server.Run();
  log::Shutdown();
  return 0;
}
