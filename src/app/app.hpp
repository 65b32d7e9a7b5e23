#pragma once

#include "app/config.hpp"

namespace chatd::app {

/// `chatd serve`: builds the object graph from the config and serves until SIGTERM/SIGINT.
/// Returns the process exit code.
int Serve(const AppConfig& config);

/// `chatd migrate`: applies pending migrations and exits.
int Migrate(const AppConfig& config);

struct NewUserRequest {
  std::string email;
  std::string name;
  std::string password;
  bool admin = false;
};

/// `chatd user create`: applies migrations, creates the user, prints its id. Exit code 0,
/// 2 for an invalid email or password, 1 otherwise (e.g. the email is taken).
int CreateUser(const AppConfig& config, const NewUserRequest& request);

/// `chatd secrets rotate`: re-encrypts every stored secret under ENCRYPTION_KEY (reading
/// old ones with ENCRYPTION_KEY_PREVIOUS) and prints how many changed.
int RotateSecrets(const AppConfig& config);

}  // namespace chatd::app
