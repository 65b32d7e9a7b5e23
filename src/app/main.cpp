// chatd's entry point: parses the command line, loads the configuration and hands over to
// the composition root (app.cpp). Exit codes: 0 ok, 1 runtime failure, 2 bad usage/config.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "app/app.hpp"
#include "app/config.hpp"
#include "core/log.hpp"

#ifndef CHATD_VERSION
#define CHATD_VERSION "0.0.0"
#endif

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

  chatd::log::Init(config->log);
  int code = 0;
  if (serve->parsed()) code = chatd::app::Serve(*config);
  else if (migrate->parsed()) code = chatd::app::Migrate(*config);
  chatd::log::Shutdown();
  return code;
}
