#include "http/middleware.hpp"

#include <algorithm>

namespace chatd::http {

namespace {

class SecurityHeaders final : public Middleware {
 public:
  void OnResponse(const Request&, Response& response) override {
    response.AddHeader("X-Content-Type-Options", "nosniff");
    response.AddHeader("X-Frame-Options", "DENY");
    response.AddHeader("Referrer-Policy", "no-referrer");
  }
};

std::string_view HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {  // [::1]:8000
    const auto end = host.find(']');
    return end == std::string_view::npos ? host : host.substr(0, end + 1);
  }
  const auto colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

class AllowedHosts final : public Middleware {
 public:
  explicit AllowedHosts(std::vector<std::string> allowed) : allowed_(std::move(allowed)) {}

  std::optional<Response> OnRequest(Request& request) override {
    const std::string_view host = HostWithoutPort(request.Header("Host"));
    for (const auto& entry : allowed_) {
      if (EqualsIgnoreCase(entry, host)) return std::nullopt;
      if (entry.size() > 2 && entry.starts_with("*.")) {
        const std::string_view suffix = std::string_view(entry).substr(1);  // ".example.com"
        if (host.size() > suffix.size() && EqualsIgnoreCase(host.substr(host.size() - suffix.size()), suffix)) {
          return std::nullopt;
        }
      }
    }
    return Response::FromError(ErrorCode::kInvalidArgument, "invalid Host header");
  }

 private:
  std::vector<std::string> allowed_;
};

class Cors final : public Middleware {
 public:
  explicit Cors(std::vector<std::string> origins)
      : any_(std::find(origins.begin(), origins.end(), "*") != origins.end()), origins_(std::move(origins)) {}

  std::optional<Response> OnRequest(Request& request) override {
    const std::string_view origin = request.Header("Origin");
    const std::string_view requested_method = request.Header("Access-Control-Request-Method");
    if (request.method != Method::kOptions || origin.empty() || requested_method.empty()) return std::nullopt;
    if (!Allowed(origin)) return Response::FromError(ErrorCode::kPermissionDenied, "CORS origin not allowed");
    Response response = Response::NoContent();
    response.AddHeader("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    const std::string_view requested_headers = request.Header("Access-Control-Request-Headers");
    if (!requested_headers.empty()) response.AddHeader("Access-Control-Allow-Headers", std::string(requested_headers));
    response.AddHeader("Access-Control-Max-Age", "600");
    return response;
  }

  void OnResponse(const Request& request, Response& response) override {
    const std::string_view origin = request.Header("Origin");
    if (origin.empty() || !Allowed(origin)) return;
    if (any_) {
      response.AddHeader("Access-Control-Allow-Origin", "*");
      return;
    }
    response.AddHeader("Access-Control-Allow-Origin", std::string(origin));
    response.AddHeader("Access-Control-Allow-Credentials", "true");
    response.AddHeader("Access-Control-Expose-Headers", "X-Request-ID, X-Process-Time, Retry-After");
    response.AddHeader("Vary", "Origin");
  }

 private:
  bool Allowed(std::string_view origin) const {
    return any_ || std::any_of(origins_.begin(), origins_.end(), [&](const auto& o) { return EqualsIgnoreCase(o, origin); });
  }
  bool any_;
  std::vector<std::string> origins_;
};

}  // namespace

std::unique_ptr<Middleware> MakeSecurityHeaders() { return std::make_unique<SecurityHeaders>(); }
std::unique_ptr<Middleware> MakeAllowedHosts(std::vector<std::string> allowed) {
  return std::make_unique<AllowedHosts>(std::move(allowed));
}
std::unique_ptr<Middleware> MakeCors(std::vector<std::string> origins) {
  return std::make_unique<Cors>(std::move(origins));
}

}  // namespace chatd::http
