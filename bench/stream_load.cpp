// Load generator for streamed completions: opens streams at a steady rate, keeps them
// all open until they end, and measures time to first token and completion. Targets
// either chatd's chat turn (SSE `delta` events) or an OpenAI-compatible upstream such as
// bench/mock_upstream (`chat.completion.chunk` with content), so the two can be compared
// in one run.
//
//   stream_load --port P --mode chatd --token T --conversations FILE [--model M]
//   stream_load --port P --mode upstream [--model M]
//               [--streams 2000] [--rate 200] [--timeout-s 120]
//
// One thread, raw sockets (no HTTP library: the responses are scanned for markers, so the
// client costs little next to the server it measures). Prints one JSON object on stdout.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <sys/resource.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "core/asio.hpp"

namespace chatd::bench {
namespace {

using Clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

struct Options {
  std::uint16_t port = 0;
  std::string mode = "chatd";  // chatd | upstream
  std::string token;
  std::string conversations_file;
  std::string model;
  int streams = 2000;
  double rate = 200;  // new streams per second
  int timeout_s = 120;
};

struct Result {
  double ttft_ms = -1;   // request written → first token
  double total_ms = -1;  // request written → end of stream
  bool ok = false;
  std::string error;
};

struct Run {
  Options options;
  std::vector<std::string> conversations;
  std::vector<Result> results;
  int active = 0;
  int peak_active = 0;
};

std::string Request(const Run& run, int index) {
  const Options& o = run.options;
  if (o.mode == "chatd") {
    const std::string& conversation = run.conversations[static_cast<std::size_t>(index) % run.conversations.size()];
    std::string body = R"({"content":"Tell me a story about load tests.")";
    if (!o.model.empty()) body += fmt::format(R"(,"model":"{}")", o.model);
    body += "}";
    return fmt::format(
        "POST /api/v1/conversations/{}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n"
        "Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {}\r\n\r\n{}",
        conversation, o.token, body.size(), body);
  }
  const std::string body = fmt::format(
      R"({{"model":"{}","stream":true,"messages":[{{"role":"user","content":"Tell me a story about load tests."}}]}})",
      o.model.empty() ? "mock-model" : o.model);
  return fmt::format(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer bench\r\n"
      "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      body.size(), body);
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

Task<void> OneStream(Run& run, int index) {
  Result& result = run.results[static_cast<std::size_t>(index)];
  const bool chatd = run.options.mode == "chatd";
  // What marks the first token, the end, and a failure in each protocol.
  const std::string_view first_marker = chatd ? "event: delta" : R"("content":"tok)";
  const std::string_view done_marker = chatd ? "event: message.completed" : "data: [DONE]";
  const std::string_view error_marker = chatd ? "event: error" : R"("error":)";

  ++run.active;
  run.peak_active = std::max(run.peak_active, run.active);
  struct Active {
    Run& run;
    ~Active() { --run.active; }
  } active{run};

  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  boost::system::error_code ec;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), run.options.port);
  co_await socket.async_connect(endpoint, asio::redirect_error(kUseAwaitable, ec));
  if (ec) {
    result.error = "connect: " + ec.message();
    co_return;
  }
  const std::string request = Request(run, index);
  const auto sent = Clock::now();
  co_await asio::async_write(socket, asio::buffer(request), asio::redirect_error(kUseAwaitable, ec));
  if (ec) {
    result.error = "write: " + ec.message();
    co_return;
  }
  // A sliding window over the response: markers may straddle two reads.
  std::string window;
  char buffer[8192];
  bool status_checked = false;
  while (true) {
    const std::size_t n = co_await socket.async_read_some(asio::buffer(buffer), asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      result.error = "read: " + ec.message();
      co_return;
    }
    window.append(buffer, n);
    if (!status_checked && window.size() >= 12) {
      status_checked = true;
      if (window.compare(0, 12, "HTTP/1.1 200") != 0) {
        result.error = "status: " + window.substr(0, window.find('\r'));
        co_return;
      }
    }
    if (result.ttft_ms < 0 && window.find(first_marker) != std::string::npos) result.ttft_ms = Ms(Clock::now() - sent);
    if (window.find(error_marker) != std::string::npos) {
      result.error = "error event";
      co_return;
    }
    if (window.find(done_marker) != std::string::npos) {
      result.total_ms = Ms(Clock::now() - sent);
      result.ok = result.ttft_ms >= 0;
      if (!result.ok) result.error = "no token before the end";
      co_return;
    }
    if (window.size() > 256) window.erase(0, window.size() - 64);
  }
}

Task<void> Spawner(Run& run) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  const auto start = Clock::now();
  const auto interval = std::chrono::duration<double>(1.0 / run.options.rate);
  for (int i = 0; i < run.options.streams; ++i) {
    timer.expires_at(start + std::chrono::duration_cast<Clock::duration>(interval * i));
    co_await timer.async_wait(kUseAwaitable);
    asio::co_spawn(executor, OneStream(run, i), asio::detached);
  }
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return -1;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

int Main(int argc, char** argv) {
  Run run;
  Options& o = run.options;
  CLI::App app{"streamed-completion load generator"};
  app.add_option("--port", o.port)->required();
  app.add_option("--mode", o.mode)->check(CLI::IsMember({"chatd", "upstream"}));
  app.add_option("--token", o.token);
  app.add_option("--conversations", o.conversations_file, "file with one conversation id per line");
  app.add_option("--model", o.model);
  app.add_option("--streams", o.streams);
  app.add_option("--rate", o.rate);
  app.add_option("--timeout-s", o.timeout_s);
  CLI11_PARSE(app, argc, argv);
  if (o.mode == "chatd") {
    std::ifstream file(o.conversations_file);
    for (std::string line; std::getline(file, line);) {
      if (!line.empty()) run.conversations.push_back(line);
    }
    if (run.conversations.empty() || o.token.empty()) {
      std::fprintf(stderr, "stream_load: --mode chatd needs --token and --conversations\n");
      return 2;
    }
  }
  run.results.resize(static_cast<std::size_t>(o.streams));

  asio::io_context io(1);
  const auto started = Clock::now();
  asio::co_spawn(io, Spawner(run), asio::detached);
  io.run_for(std::chrono::seconds(o.timeout_s));
  const double wall_s = std::chrono::duration<double>(Clock::now() - started).count();

  std::vector<double> ttft, total;
  int ok = 0;
  std::map<std::string, int> errors;
  for (const Result& r : run.results) {
    if (r.ok) {
      ++ok;
      ttft.push_back(r.ttft_ms);
      total.push_back(r.total_ms);
    } else {
      ++errors[r.error.empty() ? "unfinished" : r.error.substr(0, 60)];
    }
  }
  std::string error_json;
  for (const auto& [what, count] : errors) {
    error_json += fmt::format("{}\"{}\":{}", error_json.empty() ? "" : ",", what, count);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  const double cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  std::printf(
      "{\"mode\":\"%s\",\"streams\":%d,\"ok\":%d,\"peak_active\":%d,\"wall_s\":%.1f,\"cpu_s\":%.2f,"
      "\"ttft_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},"
      "\"total_ms\":{\"p50\":%.0f,\"p99\":%.0f},\"errors\":{%s}}\n",
      o.mode.c_str(), o.streams, ok, run.peak_active, wall_s, cpu_s, Percentile(ttft, 50), Percentile(ttft, 90),
      Percentile(ttft, 99), Percentile(ttft, 100), Percentile(total, 50), Percentile(total, 99), error_json.c_str());
  return ok == o.streams ? 0 : 1;
}

}  // namespace
}  // namespace chatd::bench

int main(int argc, char** argv) { return chatd::bench::Main(argc, argv); }
