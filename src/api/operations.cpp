#include "api/operations.hpp"

#include "core/json.hpp"

namespace chatd::api {

Task<http::Response> Operations::Health(http::Request&) {
  bool healthy = true;
  JsonWriter checks;
  checks.BeginObject();
  for (const auto& check : checks_) {
    bool ok = false;
    try {
      ok = co_await check.check();
    } catch (const std::exception&) {
      ok = false;
    }
    healthy = healthy && ok;
    checks.Field(check.name, ok ? "healthy" : "unhealthy");
  }
  checks.EndObject();
  JsonWriter body;
  body.BeginObject().Field("status", healthy ? "healthy" : "unhealthy").Key("checks").Raw(checks.str()).EndObject();
  auto response = http::Response::Json(healthy ? 200 : 503, std::move(body).str());
  response.AddHeader("Cache-Control", "no-store");
  co_return response;
}

Task<http::Response> Operations::Ready(http::Request&) {
  static const std::string kReady = R"({"status":"ready"})";
  static const std::string kStarting = R"({"status":"starting"})";
  const bool ready = ready_.load(std::memory_order_acquire);
  co_return http::Response::Json(ready ? 200 : 503, ready ? kReady : kStarting);
}

Task<http::Response> Operations::Metrics(http::Request&) {
  co_return http::Response::Text(200, metrics_.Render(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace chatd::api
