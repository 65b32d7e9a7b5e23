// Routes are data: method + pattern ("/api/v1/conversations/{id}") + handler + options.
// Matching walks a segment trie, so its cost depends on the path's depth, not on how many
// routes exist. The pattern, not the raw path, names the route in logs and metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "http/message.hpp"

namespace chatd::http {

using Handler = std::function<Task<Response>(Request&)>;

struct RouteOptions {
  /// Largest accepted body in bytes; 0 means the server's default (MAX_BODY_SIZE).
  std::size_t body_limit = 0;
  /// A WebSocket endpoint: upgrade requests reach the handler with Request::upgrade set.
  bool websocket = false;
};

struct RouteStats;  // per-route metrics, owned by the server

struct Route {
  Method method = Method::kGet;
  std::string pattern;
  Handler handler;
  RouteOptions options;
  mutable RouteStats* stats = nullptr;
};

struct RouteMatch {
  const Route* route = nullptr;  // null: no route for this method (see allow) or path
  std::vector<std::pair<std::string_view, std::string>> params;
  /// When the path exists but not for this method: the methods it has ("GET, HEAD").
  std::string allow;
  bool path_exists = false;
};

class Router {
 public:
  Router();
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  /// Adds a route. Patterns are absolute paths whose segments are literals or `{name}`.
  /// Throws std::invalid_argument on a malformed or duplicate pattern (a programming error).
  void Add(Method method, std::string pattern, Handler handler, RouteOptions options = {});
  /// Finds the route for a request. HEAD falls back to GET. Thread-safe after setup.
  RouteMatch Match(Method method, std::string_view path) const;
  /// Every route, in the order added.
  const std::vector<std::unique_ptr<Route>>& routes() const { return routes_; }

 private:
  struct Node;
  std::unique_ptr<Node> root_;
  std::vector<std::unique_ptr<Route>> routes_;
};

}  // namespace chatd::http
