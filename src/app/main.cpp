// chatd's entry point: parses the command line, loads the configuration and hands over to
// the composition root (app.cpp). Exit codes: 0 ok, 1 runtime failure, 2 bad usage/config.
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>

#include "app/app.hpp"
#include "accounts/secret_box.hpp"
#include "app/config.hpp"
#include "core/log.hpp"

#ifndef CHATD_VERSION
#define CHATD_VERSION "0.0.0"
#endif

namespace {

// One line from standard input; on a terminal, prompted for twice without echo.
chatd::Expected<std::string> ReadPassword() {
  const bool terminal = isatty(STDIN_FILENO) != 0;
  auto read_line = [terminal](const char* prompt) -> std::optional<std::string> {
    termios saved{};
    if (terminal) {
      std::fputs(prompt, stderr);
      tcgetattr(STDIN_FILENO, &saved);
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::string line;
    const bool ok = static_cast<bool>(std::getline(std::cin, line));
    if (terminal) {
      tcsetattr(STDIN_FILENO, TCSANOW, &saved);
      std::fputs("\n", stderr);
    }
    if (!ok) return std::nullopt;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  };
  auto password = read_line("Password: ");
  if (!password || password->empty()) {
    return chatd::MakeError(chatd::ErrorCode::kInvalidArgument, "no password on standard input");
  }
  if (terminal) {
    auto again = read_line("Password (again): ");
    if (!again || *again != *password) return chatd::MakeError(chatd::ErrorCode::kInvalidArgument, "passwords differ");
  }
  return *password;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"chatd: a self-hosted backend for ChatGPT-style applications"};
  cli.require_subcommand(1);
  std::string env_file = ".env";
  cli.add_option("--env-file", env_file, "Read KEY=VALUE settings from this file (default .env)");

  std::map<std::string, std::string> overrides;
  auto* serve = cli.add_subcommand("serve", "Serve the HTTP API");
  std::string host, data_dir;
  int port = -1, workers = -1;
  serve->add_option("--host", host, "Address to listen on (HOST)");
  serve->add_option("--port", port, "Port to listen on (PORT)")->check(CLI::Range(0, 65535));
  serve->add_option("--data-dir", data_dir, "Directory for local data (DATA_DIR)");
  serve->add_option("--workers", workers, "I/O threads (WORKERS)")->check(CLI::Range(1, 256));
  auto* migrate = cli.add_subcommand("migrate", "Apply database migrations and exit");
  auto* config_cmd = cli.add_subcommand("config", "Configuration tools");
  auto* check = config_cmd->add_subcommand("check", "Print the effective configuration (secrets masked) and validate it");
  config_cmd->require_subcommand(1);
  auto* version = cli.add_subcommand("version", "Print the version");
  auto* user_cmd = cli.add_subcommand("user", "User administration");
  user_cmd->require_subcommand(1);
  auto* user_create = user_cmd->add_subcommand(
      "create", "Create a user; the password is read from standard input (prompted for on a terminal)");
  chatd::app::NewUserRequest new_user;
  user_create->add_option("--email", new_user.email, "The user's email")->required();
  user_create->add_option("--name", new_user.name, "Display name");
  user_create->add_flag("--admin", new_user.admin, "Give the user the admin role");
  auto* secrets_cmd = cli.add_subcommand("secrets", "Encryption of stored secrets");
  secrets_cmd->require_subcommand(1);
  auto* secrets_rotate = secrets_cmd->add_subcommand(
      "rotate", "Re-encrypt stored secrets under ENCRYPTION_KEY (old ones read with ENCRYPTION_KEY_PREVIOUS)");
  auto* secrets_new_key = secrets_cmd->add_subcommand("new-key", "Print a new random ENCRYPTION_KEY");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = cli.exit(error);
    return code == 0 ? 0 : 2;
  }

  if (version->parsed()) {
    std::printf("chatd %s\n", CHATD_VERSION);
    return 0;
  }
  if (secrets_new_key->parsed()) {
    std::printf("%s\n", chatd::accounts::SecretBox::GenerateKeyBase64().c_str());
    return 0;
  }

  auto env = chatd::EnvSource::Load(env_file);
  if (!env) {
    std::fprintf(stderr, "chatd: %s\n", env.error().message.c_str());
    return 2;
  }
  if (!host.empty()) env->Set("HOST", host);
  if (port >= 0) env->Set("PORT", std::to_string(port));
  if (!data_dir.empty()) env->Set("DATA_DIR", data_dir);
  if (workers > 0) env->Set("WORKERS", std::to_string(workers));

  auto config = chatd::app::LoadConfig(*env);
  if (!config) {
    std::fprintf(stderr, "chatd: invalid configuration: %s\n", config.error().message.c_str());
    return 2;
  }
  if (check->parsed()) {
    std::fputs(chatd::app::DescribeConfig(*config).c_str(), stdout);
    std::puts("configuration is valid");
    return 0;
  }

  if (user_create->parsed()) {
    auto password = ReadPassword();
    if (!password) {
      std::fprintf(stderr, "chatd: %s\n", password.error().message.c_str());
      return 2;
    }
    new_user.password = std::move(*password);
  }

  chatd::log::Init(config->log);
  int code = 0;
  if (serve->parsed()) code = chatd::app::Serve(*config);
  else if (migrate->parsed()) code = chatd::app::Migrate(*config);
  else if (user_create->parsed()) code = chatd::app::CreateUser(*config, new_user);
  else if (secrets_rotate->parsed()) code = chatd::app::RotateSecrets(*config);
  chatd::log::Shutdown();
  return code;
}
