// Middleware: synchronous hooks around every request, run in order on the way in and in
// reverse on the way out. They are plain functions, not coroutines, because they run on
// every request and must stay cheap; anything that needs I/O (authentication against
// the database) belongs in a route's handler wrapper instead.
//
// The server itself does what every response needs whatever the route: the request id,
// X-Process-Time, access log and metrics (http/server.cpp), so those cannot be skipped by
// a middleware that answers early.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/message.hpp"

namespace chatd::http {

class Middleware {
 public:
  virtual ~Middleware() = default;
  /// Before the handler. Returning a response answers the request without the handler
  /// (and without later middleware's OnRequest). Runs on an I/O thread: never block.
  virtual std::optional<Response> OnRequest(Request&) { return std::nullopt; }
  /// On every response: handler results, early answers and the server's own errors.
  virtual void OnResponse(const Request&, Response&) {}
};

using MiddlewareChain = std::vector<std::unique_ptr<Middleware>>;

/// X-Content-Type-Options, X-Frame-Options, Referrer-Policy on every response.
std::unique_ptr<Middleware> MakeSecurityHeaders();

/// Rejects requests whose Host is not in `allowed` (400). Entries are host names without
/// port; "*.example.com" matches subdomains; "*" or an empty list allows everything.
std::unique_ptr<Middleware> MakeAllowedHosts(std::vector<std::string> allowed);

/// CORS for the listed origins ("*" for any, without credentials): answers preflights
/// (204, or 403 for an origin not allowed) and adds Access-Control-* to responses.
std::unique_ptr<Middleware> MakeCors(std::vector<std::string> origins);

}  // namespace chatd::http
