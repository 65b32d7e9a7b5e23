#pragma once

#include "app/config.hpp"

namespace chatd::app {

/// `chatd serve`: builds the object graph from the config and serves until SIGTERM/SIGINT.
/// Returns the process exit code.
int Serve(const AppConfig& config);

/// `chatd migrate`: applies pending migrations and exits.
int Migrate(const AppConfig& config);

}  // namespace chatd::app
