#pragma once

#include "api/operations.hpp"
#include "http/router.hpp"

namespace chatd::api {

/// The services the routes call into; built by app/ and owned there.
struct Services {
  Operations& operations;
};

/// Registers every route of the HTTP surface on `router`: the one table of routes.
void AddRoutes(http::Router& router, Services& services);

}  // namespace chatd::api
