// The whole program's configuration: each module's own config struct, filled from the
// environment, a .env file and command-line flags, and validated once at startup.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/config_env.hpp"
#include "core/log.hpp"
#include "http/server.hpp"
#include "store/open.hpp"

namespace chatd::app {

struct AppConfig {
  std::string environment = "development";  // development|production
  std::string data_dir = "./data";
  std::string secret_key;  // used by accounts; masked in `config check`
  bool migrate_on_start = true;
  std::size_t blocking_threads = 8;
  std::vector<std::string> cors_origins;
  std::vector<std::string> allowed_hosts;
  http::ServerConfig server;
  store::DatabaseConfig database;
  log::LogConfig log;
};

/// Reads and validates the configuration. On an invalid value the error is one line
/// naming the variable, what is wrong and the accepted form.
Expected<AppConfig> LoadConfig(const EnvSource& env);

/// The effective configuration as `KEY=value` lines, secrets masked.
std::string DescribeConfig(const AppConfig& config);

}  // namespace chatd::app
