#include "api/routes.hpp"

namespace chatd::api {

using http::Method;
using http::Request;

void AddRoutes(http::Router& router, Services& services) {
  auto& ops = services.operations;
  // method, path, handler [, options]
  router.Add(Method::kGet, "/health", [&ops](Request& r) { return ops.Health(r); });
  router.Add(Method::kGet, "/ready", [&ops](Request& r) { return ops.Ready(r); });
  router.Add(Method::kGet, "/metrics", [&ops](Request& r) { return ops.Metrics(r); });
}

}  // namespace chatd::api
