// Plain request and response types: what handlers and middleware see. No Beast here;
// the session adapts Beast's messages to these (http/server.cpp) so modules above http
// compile without Beast's headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"

namespace chatd::http {

enum class Method : std::uint8_t { kGet, kHead, kPost, kPut, kPatch, kDelete, kOptions, kOther };
inline constexpr std::size_t kMethodCount = 8;

std::string_view MethodName(Method method);
Method ParseMethod(std::string_view name);

/// Case-insensitive ASCII comparison, as header names need.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

struct Route;
class Response;
class WebSocketUpgrade;

/// A response sent in pieces as it is produced (Server-Sent Events, proxied streams): the
/// head first, then chunks, each written to the socket before Write() returns, so a slow
/// client slows its producer instead of growing a buffer. Runs on the request's I/O thread.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  /// Sends the status and headers of `head` (its body is ignored) with chunked transfer
  /// encoding. Call at most once. False when the client is gone.
  virtual Task<bool> Begin(Response head) = 0;
  /// Sends one chunk. False once the client is gone or the write timed out: stop then.
  virtual Task<bool> Write(std::string_view data) = 0;
  /// Calls `on_gone` once, on this I/O thread, if the client closes (or resets) the
  /// connection before the handler returns — also before Begin(), and for handlers that
  /// answer with a plain Response — so work done for a client that left can be aborted
  /// within about 100 ms rather than at the next write (the server starts watching 50–100
  /// ms after this call: most requests end sooner, and so never pay for a socket wait).
  /// Watching stops when the handler returns, or when the client sends more bytes (a
  /// pipelined request). At most one watcher per request.
  virtual void WatchClient(std::function<void()> on_gone) = 0;
};

/// An incoming request. Header views and `path` point into the connection's buffers and
/// are valid until the handler's coroutine completes.
struct Request {
  Method method = Method::kGet;
  std::string_view method_name;
  std::string_view target;  // path plus query, as sent
  std::string_view path;
  std::string_view query;   // without the '?'
  unsigned version = 11;    // 10 or 11
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string body;
  std::string remote_address;  // the TCP peer
  /// The client's IP: remote_address, or from X-Forwarded-For / X-Real-IP when the peer
  /// is a trusted proxy (http/client_ip.hpp). Key per-client limits and logs on this.
  std::string client_address;
  std::string request_id;
  std::vector<std::pair<std::string_view, std::string>> params;  // from the route pattern
  const Route* route = nullptr;
  std::chrono::steady_clock::time_point start;
  /// For handlers that stream: once they call stream->Begin(), the Response they return
  /// is ignored and the server ends the stream when the handler returns.
  ResponseStream* stream = nullptr;
  /// On a WebSocket route (RouteOptions::websocket), for an upgrade request: Accept() it
  /// to talk over the socket; the Response returned after that is ignored.
  WebSocketUpgrade* upgrade = nullptr;

  /// The first header with this name (case-insensitive), or "" when absent.
  std::string_view Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
  /// A path parameter by its name in the route pattern, e.g. "id" for "/things/{id}".
  std::string_view Param(std::string_view name) const;
  /// A query parameter, percent-decoded; nullopt when absent.
  std::optional<std::string> Query(std::string_view name) const;
  /// The media type of Content-Type without parameters, lower-cased ("application/json").
  std::string ContentType() const;
};

class Response {
 public:
  Response() = default;
  Response(int status, std::string body, std::string_view content_type);

  static Response Json(int status, std::string body) { return {status, std::move(body), "application/json"}; }
  static Response Text(int status, std::string body, std::string_view content_type = "text/plain; charset=utf-8") {
    return {status, std::move(body), content_type};
  }
  static Response NoContent() { return {204, {}, {}}; }
  /// {"error":{"message","type","code","param"}} with the status mapped from the code.
  static Response FromError(const Error& error);
  static Response FromError(ErrorCode code, std::string message, std::string param = {}) {
    return FromError(Error{code, std::move(message), std::move(param)});
  }

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close_connection = false;  // ask the session to close after writing

  void SetHeader(std::string name, std::string value);
  void AddHeader(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
  std::string_view Header(std::string_view name) const;
};

/// Decodes %XX escapes (and '+' as space when `plus_is_space`); nullopt on a bad escape.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

/// The value of `name` in an application/x-www-form-urlencoded string (a query string or
/// a form body), decoded; nullopt when absent or badly escaped.
std::optional<std::string> FormField(std::string_view encoded, std::string_view name);

}  // namespace chatd::http
