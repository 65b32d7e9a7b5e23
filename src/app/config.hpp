// The whole program's configuration: each module's own config struct, filled from the
// environment, a .env file and command-line flags, and validated once at startup.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "accounts/account_service.hpp"
#include "api/guard.hpp"
#include "chat/chat_service.hpp"
#include "core/config_env.hpp"
#include "core/log.hpp"
#include "gateway/gateway.hpp"
#include "gateway/response_cache.hpp"
#include "gateway/usage_recorder.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "llm/demo_provider.hpp"
#include "llm/router.hpp"
#include "store/open.hpp"

namespace chatd::app {

struct AppConfig {
  std::string environment = "development";  // development|production
  std::string data_dir = "./data";
  std::string api_prefix = "/api/v1";  // API_V1_STR
  bool migrate_on_start = true;
  std::vector<std::string> cors_origins;
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> trusted_proxies;  // CIDRs whose X-Forwarded-For is believed
  std::string admin_email;     // ADMIN_EMAIL/ADMIN_PASSWORD: an admin created at start
  std::string admin_password;
  std::string encryption_key;                      // ENCRYPTION_KEY: base64, 32 bytes
  std::vector<std::string> encryption_key_previous;  // ENCRYPTION_KEY_PREVIOUS, during a rotation
  http::ServerConfig server;
  store::DatabaseConfig database;
  log::LogConfig log;
  accounts::AccountsConfig accounts;  // accounts.secret_key may be empty until ResolveSecretKey
  api::RateLimitConfig rate_limits;
  std::string llm_model = "demo";  // LLM_MODEL: the default model
  chat::ChatConfig chat;
  llm::DemoConfig demo;
  std::string models_file;    // MODELS_FILE
  http::ClientConfig llm_client;  // the outbound client the providers share (LLM_CONNECT_TIMEOUT, LLM_CA_FILE, ...)
  llm::RouterConfig llm;      // upstreams (OPENAI_*, DEEPSEEK_*, MODELS_FILE) and models
  gateway::UsageRecorderConfig usage;  // USAGE_*: the usage events' buffer and flusher
  gateway::GatewayConfig gateway;  // /v1: the LLM_* timeouts and LLM_MAX_TOKENS, as the chat turn's
  gateway::ResponseCacheConfig response_cache;  // GATEWAY_CACHE*: /v1/chat/completions answers kept
};

/// Reads and validates the configuration. On an invalid value the error is one line
/// naming the variable, what is wrong and the accepted form.
Expected<AppConfig> LoadConfig(const EnvSource& env);

/// In development, an empty SECRET_KEY is replaced by one generated once and kept in
/// $DATA_DIR/secret_key (mode 0600), so tokens survive restarts. Blocking (file I/O):
/// call at startup. Production never gets here without a valid key (LoadConfig refuses).
Expected<void> ResolveSecretKey(AppConfig& config);

/// The same for ENCRYPTION_KEY ($DATA_DIR/encryption_key), then checks the keyring.
Expected<void> ResolveEncryptionKey(AppConfig& config);

/// The effective configuration as `KEY=value` lines, secrets masked.
std::string DescribeConfig(const AppConfig& config);

}  // namespace chatd::app
