#include "http/router.hpp"

#include <stdexcept>

namespace chatd::http {

struct Router::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param;
  std::string param_name;
  std::array<const Route*, kMethodCount> routes{};
};

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;

namespace {

// Calls `fn(segment)` for each '/'-separated segment of an absolute path; false on a
// path that is not absolute.
template <typename Fn>
bool ForEachSegment(std::string_view path, Fn&& fn) {
  if (path.empty() || path.front() != '/') return false;
  path.remove_prefix(1);
  if (path.empty()) return true;  // "/" itself has no segments
  while (true) {
    const auto slash = path.find('/');
    if (!fn(path.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

}  // namespace

void Router::Add(Method method, std::string pattern, Handler handler, RouteOptions options) {
  Node* node = root_.get();
  const bool ok = ForEachSegment(pattern, [&](std::string_view segment) {
    if (segment.empty()) return false;
    if (segment.front() == '{') {
      if (segment.size() < 3 || segment.back() != '}') return false;
      const std::string name(segment.substr(1, segment.size() - 2));
      if (!node->param) {
        node->param = std::make_unique<Node>();
        node->param_name = name;
      } else if (node->param_name != name) {
        return false;  // two names for one position would make matching ambiguous
      }
      node = node->param.get();
    } else {
      auto& child = node->literals[std::string(segment)];
      if (!child) child = std::make_unique<Node>();
      node = child.get();
    }
    return true;
  });
  if (!ok) throw std::invalid_argument("bad route pattern: " + pattern);
  auto& slot = node->routes[static_cast<std::size_t>(method)];
  if (slot != nullptr) throw std::invalid_argument("duplicate route: " + pattern);
  auto route = std::make_unique<Route>(Route{method, std::move(pattern), std::move(handler), options});
  slot = route.get();
  routes_.push_back(std::move(route));
}

RouteMatch Router::Match(Method method, std::string_view path) const {
  RouteMatch match;
  const Node* node = root_.get();
  std::vector<std::pair<std::string_view, std::string>> params;
  const bool walked = ForEachSegment(path, [&](std::string_view segment) {
    if (auto it = node->literals.find(segment); it != node->literals.end()) {
      node = it->second.get();
      return true;
    }
    if (node->param && !segment.empty()) {
      auto decoded = PercentDecode(segment, false);
      if (!decoded) return false;
      params.emplace_back(node->param_name, std::move(*decoded));
      node = node->param.get();
      return true;
    }
    return false;
  });
  if (!walked) return match;

  const Route* route = node->routes[static_cast<std::size_t>(method)];
  if (route == nullptr && method == Method::kHead) route = node->routes[static_cast<std::size_t>(Method::kGet)];
  for (std::size_t m = 0; m < kMethodCount; ++m) {
    if (node->routes[m] == nullptr) continue;
    match.path_exists = true;
    if (!match.allow.empty()) match.allow += ", ";
    match.allow += MethodName(static_cast<Method>(m));
    if (static_cast<Method>(m) == Method::kGet && node->routes[static_cast<std::size_t>(Method::kHead)] == nullptr) {
      match.allow += ", HEAD";
    }
  }
  if (route != nullptr) {
    match.route = route;
    match.params = std::move(params);
  }
  return match;
}

}  // namespace chatd::http
