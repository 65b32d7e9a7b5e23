#include "app/config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <fmt/format.h>

#include "accounts/secret_box.hpp"
#include "accounts/tokens.hpp"
#include "app/models_file.hpp"
#include "cache/rate_limiter.hpp"
#include "core/log.hpp"

namespace chatd::app {

namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

// A token bucket from NAME ("10/s", "5/m", "100/h") and NAME_BURST (a positive number).
cache::RateLimit RateLimitSetting(ConfigReader& read, std::string_view name, std::string_view rate_default,
                                  std::int64_t burst_default) {
  const std::string rate = read.String(name, std::string(rate_default));
  const std::string burst_name = std::string(name) + "_BURST";
  const std::int64_t burst = read.Integer(burst_name, burst_default, 1, 1'000'000'000);
  auto limit = cache::ParseRateLimit(rate, std::to_string(burst));
  if (!limit) {
    read.Fail(name, rate, "is not a rate", "a number of requests per second, minute or hour, like 10/s or 5/m");
    return {};
  }
  return *limit;
}

// SECRET_KEY values copied from examples and tutorials: never acceptable in production.
bool IsPlaceholderSecret(std::string_view key) {
  std::string lower(key);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (std::string_view known : {"changeme", "change-me", "change_me", "changethis", "secret", "secret-key",
                                 "secret_key", "your-secret-key", "your_secret_key", "supersecret", "password",
                                 "development", "insecure", "notsecret", "example"}) {
    if (lower.find(known) != std::string::npos) return true;
  }
  return false;
}

// The upstreams named by environment variables: OpenAI-compatible (OPENAI_API_KEY and/or
// OPENAI_BASE_URL; a local server needs no key) and DeepSeek. Both offer what their
// /models lists. A provider of the same name in MODELS_FILE wins.
void AddEnvUpstreams(ConfigReader& read, const EnvSource& env, const llm::UpstreamConfig& defaults,
                     std::vector<llm::UpstreamConfig>& upstreams) {
  struct Known {
    std::string_view name, key, base, default_base;
  };
  for (const Known known : {Known{"openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1"},
                            Known{"deepseek", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", "https://api.deepseek.com/v1"}}) {
    const std::string key = read.String(known.key, "");
    const bool base_set = env.Get(known.base).has_value();
    const std::string base = read.String(known.base, std::string(known.default_base));
    if (key.empty() && !base_set) continue;
    if (auto url = http::ParseUrl(base); !url) {
      read.Fail(known.base, base, "is not a URL", "an http:// or https:// URL such as https://api.openai.com/v1");
      continue;
    }
    const bool in_file = std::any_of(upstreams.begin(), upstreams.end(),
                                     [&](const llm::UpstreamConfig& u) { return u.api.name == known.name; });
    if (in_file) continue;
    llm::UpstreamConfig upstream = defaults;
    upstream.api.name = std::string(known.name);
    upstream.api.base_url = base;
    upstream.api.api_key = key;
    upstream.discover_models = true;
    upstreams.push_back(std::move(upstream));
  }
}

}  // namespace

Expected<AppConfig> LoadConfig(const EnvSource& env) {
  AppConfig config;
  ConfigReader read(env);
  using std::chrono::milliseconds;

  config.environment = read.OneOf("ENVIRONMENT", "development", {"development", "production", "test"});
  config.data_dir = read.String("DATA_DIR", "./data");
  config.api_prefix = read.String("API_V1_STR", "/api/v1");
  config.migrate_on_start = read.Bool("MIGRATE_ON_START", true);
  config.cors_origins = read.List("CORS_ORIGINS");
  config.allowed_hosts = read.List("ALLOWED_HOSTS");
  config.trusted_proxies = read.List("TRUSTED_PROXIES");
  config.admin_email = read.String("ADMIN_EMAIL", "");
  config.admin_password = read.String("ADMIN_PASSWORD", "");
  config.encryption_key = read.String("ENCRYPTION_KEY", "");
  config.encryption_key_previous = read.List("ENCRYPTION_KEY_PREVIOUS");

  auto& accounts = config.accounts;
  accounts.secret_key = read.String("SECRET_KEY", "");
  accounts.access_token_ttl = std::chrono::minutes(read.Integer("ACCESS_TOKEN_EXPIRE_MINUTES", 30, 1, 60 * 24 * 30));
  accounts.refresh_token_ttl = std::chrono::hours(24 * read.Integer("REFRESH_TOKEN_EXPIRE_DAYS", 30, 1, 365));
  accounts.allow_registration = read.Bool("ALLOW_REGISTRATION", true);
  accounts.lockout_threshold = static_cast<int>(read.Integer("LOGIN_LOCKOUT_THRESHOLD", 10, 1, 1000));
  accounts.lockout_duration = std::chrono::duration_cast<std::chrono::seconds>(
      read.Duration("LOGIN_LOCKOUT_DURATION", std::chrono::minutes(15)));

  config.llm_model = read.String("LLM_MODEL", "demo");
  auto& chat = config.chat;
  chat.default_max_tokens = read.Integer("LLM_MAX_TOKENS", 1024, 1, 1'000'000);
  if (env.Get("LLM_TEMPERATURE")) chat.default_temperature = read.Number("LLM_TEMPERATURE", 0.7, 0, 2);
  chat.first_byte_timeout = read.Duration("LLM_FIRST_BYTE_TIMEOUT", std::chrono::seconds(30));
  chat.idle_timeout = read.Duration("LLM_IDLE_TIMEOUT", std::chrono::seconds(30));
  chat.max_duration = read.Duration("LLM_MAX_DURATION", std::chrono::minutes(10));
  chat.ping_interval = read.Duration("SSE_PING_INTERVAL", std::chrono::seconds(15));
  chat.resume_window = read.Duration("STREAM_RESUME_WINDOW", std::chrono::minutes(2));
  config.demo.token_interval = read.Duration("DEMO_TOKEN_INTERVAL", std::chrono::milliseconds(20));
  config.gateway.first_byte_timeout = chat.first_byte_timeout;
  config.gateway.idle_timeout = chat.idle_timeout;
  config.gateway.default_max_tokens = chat.default_max_tokens;

  auto& response_cache = config.response_cache;
  response_cache.enabled = read.Bool("GATEWAY_CACHE", false);
  response_cache.ttl = read.Duration("GATEWAY_CACHE_TTL", std::chrono::hours(1));
  response_cache.max_bytes = read.Bytes("GATEWAY_CACHE_MAX_BYTES", 64 * 1024 * 1024);
  if (response_cache.ttl.count() <= 0) {
    read.Fail("GATEWAY_CACHE_TTL", env.Get("GATEWAY_CACHE_TTL").value_or(""), "is not positive",
              "a duration such as 30s, 10m or 1h");
  }
  if (response_cache.max_bytes < response_cache.max_entry_bytes) {
    read.Fail("GATEWAY_CACHE_MAX_BYTES", env.Get("GATEWAY_CACHE_MAX_BYTES").value_or(""), "is too small",
              "at least 1MiB, so the cache holds an answer of the largest size it keeps");
  }

  auto& usage = config.usage;
  usage.buffer_size = static_cast<std::size_t>(read.Integer("USAGE_BUFFER_SIZE", 10'000, 1, 10'000'000));
  usage.batch_size = static_cast<std::size_t>(read.Integer("USAGE_BATCH_SIZE", 500, 1, 10'000));
  usage.flush_interval = read.Duration("USAGE_FLUSH_INTERVAL", std::chrono::seconds(1));
  usage.shutdown_timeout = read.Duration("USAGE_SHUTDOWN_TIMEOUT", std::chrono::seconds(10));
  if (usage.flush_interval.count() <= 0) {
    read.Fail("USAGE_FLUSH_INTERVAL", env.Get("USAGE_FLUSH_INTERVAL").value_or(""), "is not positive",
              "a duration such as 500ms or 1s");
  }

  auto& client = config.llm_client;
  client.connect_timeout = read.Duration("LLM_CONNECT_TIMEOUT", std::chrono::seconds(10));
  client.max_idle_per_origin =
      static_cast<std::size_t>(read.Integer("LLM_MAX_IDLE_CONNECTIONS", 128, 0, 100'000));
  client.first_byte_timeout = chat.first_byte_timeout;
  client.idle_timeout = chat.idle_timeout;
  client.extra_ca_file = read.String("LLM_CA_FILE", "");
  client.address_policy.allow_link_local = read.Bool("LLM_ALLOW_LINK_LOCAL", false);
  llm::UpstreamConfig upstream_defaults;
  upstream_defaults.retry.retries = static_cast<int>(read.Integer("LLM_RETRIES", 2, 0, 10));
  upstream_defaults.retry.backoff = read.Duration("LLM_RETRY_BACKOFF", milliseconds(250));
  upstream_defaults.retry.max_retry_after = read.Duration("LLM_RETRY_AFTER_MAX", std::chrono::seconds(30));
  upstream_defaults.breaker.failures = static_cast<int>(read.Integer("LLM_CIRCUIT_BREAKER_FAILURES", 5, 0, 1000));
  upstream_defaults.breaker.cooldown = read.Duration("LLM_CIRCUIT_BREAKER_COOLDOWN", std::chrono::seconds(30));
  config.models_file = read.String("MODELS_FILE", "");

  auto& limits = config.rate_limits;
  limits.enabled = read.Bool("RATE_LIMIT_ENABLED", true);
  limits.api = RateLimitSetting(read, "RATE_LIMIT_API", "10/s", 20);
  limits.login = RateLimitSetting(read, "RATE_LIMIT_LOGIN", "5/m", 5);
  limits.upload = RateLimitSetting(read, "RATE_LIMIT_UPLOAD", "1/s", 5);

  auto& server = config.server;
  server.host = read.String("HOST", "127.0.0.1");
  server.port = static_cast<std::uint16_t>(read.Integer("PORT", 8000, 0, 65535));
  server.io_threads = static_cast<std::size_t>(
      read.Integer("WORKERS", std::max(1u, std::thread::hardware_concurrency()), 1, 256));
  server.max_connections = static_cast<std::size_t>(read.Integer("MAX_CONNECTIONS", 10000, 1, 1'000'000));
  server.max_body_size = read.Bytes("MAX_BODY_SIZE", 1024 * 1024);
  server.header_timeout = read.Duration("HEADER_TIMEOUT", milliseconds(10'000));
  server.body_timeout = read.Duration("BODY_TIMEOUT", milliseconds(30'000));
  server.keepalive_timeout = read.Duration("KEEPALIVE_TIMEOUT", milliseconds(75'000));
  server.write_timeout = read.Duration("WRITE_TIMEOUT", milliseconds(30'000));
  server.websocket.max_message = read.Bytes("WEBSOCKET_MAX_MESSAGE", 64 * 1024);
  server.websocket.idle_timeout = read.Duration("WEBSOCKET_IDLE_TIMEOUT", milliseconds(60'000));
  server.shutdown_timeout = read.Duration("SHUTDOWN_TIMEOUT", milliseconds(30'000));
  server.access_log = read.Bool("ACCESS_LOG", true);

  auto& log = config.log;
  log.level = read.OneOf("LOG_LEVEL", "info", {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"});
  if (log.level == "warning") log.level = "warn";
  log.format = read.OneOf("LOG_FORMAT", "text", {"text", "json"});
  log.file = read.String("LOG_FILE", "");

  auto& db = config.database;
  const std::string default_url = "sqlite:///" + (std::filesystem::absolute(config.data_dir) / "chatd.db").lexically_normal().string();
  db.url = read.String("DATABASE_URL", default_url);
  if (db.url.rfind("sqlite:////", 0) == 0) db.url.erase(9, 1);  // sqlite:/// + /abs/path
  db.pool_size = static_cast<std::size_t>(read.Integer("DB_POOL_SIZE", 10, 1, 1000));
  db.statement_timeout = read.Duration("DB_STATEMENT_TIMEOUT", milliseconds(30'000));
  db.connect_timeout = read.Duration("DB_CONNECT_TIMEOUT", milliseconds(5'000));

  if (read.error()) return MakeError(ErrorCode::kInvalidArgument, *read.error());

  // Upstreams and models: the file's first, then the ones environment variables name.
  if (!config.models_file.empty()) {
    auto file = LoadModelsFile(config.models_file, upstream_defaults, env);
    if (!file) return Unexpected{std::move(file).error()};
    config.llm = std::move(file->router);
    if (!file->default_model.empty() && !env.Get("LLM_MODEL")) config.llm_model = file->default_model;
  }
  AddEnvUpstreams(read, env, upstream_defaults, config.llm.upstreams);
  if (read.error()) return MakeError(ErrorCode::kInvalidArgument, *read.error());
  for (const llm::ModelConfig& model : config.llm.models) {
    for (const llm::DeploymentConfig& deployment : model.Deployments()) {
      const bool known = std::any_of(config.llm.upstreams.begin(), config.llm.upstreams.end(),
                                     [&](const llm::UpstreamConfig& u) { return u.api.name == deployment.provider; });
      if (!known) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("MODELS_FILE {}: model '{}' names provider '{}', which is neither in the file nor "
                                     "set up by OPENAI_API_KEY / OPENAI_BASE_URL / DEEPSEEK_API_KEY",
                                     config.models_file, model.name, deployment.provider));
      }
    }
  }
  if (!client.extra_ca_file.empty()) {
    if (auto checked = http::Client::Create(client); !checked) return Unexpected{std::move(checked).error()};
  }

  // Checks that span values or need more than a parser.
  if (!(db.url.rfind("sqlite:", 0) == 0 || db.url.rfind("postgresql://", 0) == 0 || db.url.rfind("postgres://", 0) == 0)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("DATABASE_URL='{}' has an unsupported scheme; expected sqlite:///path or postgresql://...",
                                 store::RedactDatabaseUrl(db.url)));
  }
  if (config.environment == "production") {
    const auto& key = config.accounts.secret_key;
    if (key.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "SECRET_KEY is not set; production needs a random value of at least 32 bytes "
                       "(e.g. openssl rand -base64 48)");
    }
    if (key.size() < 32 || IsPlaceholderSecret(key)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "SECRET_KEY is too short or a well-known placeholder; expected a random value of at least "
                       "32 bytes (e.g. openssl rand -base64 48)");
    }
  }
  if (config.environment == "production" && config.encryption_key.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "ENCRYPTION_KEY is not set; production needs 32 random bytes, base64 (chatd secrets new-key)");
  }
  if (!config.encryption_key.empty()) {
    if (auto box = accounts::SecretBox::FromBase64(config.encryption_key, config.encryption_key_previous); !box) {
      return Unexpected{std::move(box).error()};
    }
  }
  if (config.admin_email.empty() != config.admin_password.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "ADMIN_EMAIL and ADMIN_PASSWORD must be set together");
  }
  if (server.max_body_size == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "MAX_BODY_SIZE='0' is too small; expected at least 1 byte");
  }
  for (const auto& [name, value] : {std::pair{"HEADER_TIMEOUT", server.header_timeout},
                                    {"BODY_TIMEOUT", server.body_timeout},
                                    {"KEEPALIVE_TIMEOUT", server.keepalive_timeout},
                                    {"WRITE_TIMEOUT", server.write_timeout}}) {
    if (value.count() == 0) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}='0' disables a timeout; expected a duration above 0", name));
    }
  }
  return config;
}

std::string DescribeConfig(const AppConfig& config) {
  const auto& s = config.server;
  const auto& d = config.database;
  std::string out;
  auto line = [&out](std::string_view key, const auto& value) { out += fmt::format("{}={}\n", key, value); };
  line("ENVIRONMENT", config.environment);
  line("HOST", s.host);
  line("PORT", s.port);
  line("WORKERS", s.io_threads);
  line("DATA_DIR", config.data_dir);
  line("DATABASE_URL", store::RedactDatabaseUrl(d.url));
  line("DB_POOL_SIZE", d.pool_size);
  line("DB_STATEMENT_TIMEOUT", fmt::format("{}ms", d.statement_timeout.count()));
  line("DB_CONNECT_TIMEOUT", fmt::format("{}ms", d.connect_timeout.count()));
  line("MIGRATE_ON_START", config.migrate_on_start);
  line("SECRET_KEY", config.accounts.secret_key.empty() ? "(not set)" : "****");
  line("ACCESS_TOKEN_EXPIRE_MINUTES", config.accounts.access_token_ttl.count() / 60);
  line("ALLOW_REGISTRATION", config.accounts.allow_registration);
  line("ADMIN_EMAIL", config.admin_email);
  line("ADMIN_PASSWORD", config.admin_password.empty() ? "(not set)" : "****");
  line("ENCRYPTION_KEY", config.encryption_key.empty() ? "(not set)" : "****");
  line("ENCRYPTION_KEY_PREVIOUS", config.encryption_key_previous.empty() ? "(not set)" : "****");
  line("TRUSTED_PROXIES", Join(config.trusted_proxies));
  line("LLM_MODEL", config.llm_model);
  line("LLM_MAX_TOKENS", config.chat.default_max_tokens);
  line("LLM_TEMPERATURE", config.chat.default_temperature ? fmt::format("{}", *config.chat.default_temperature) : "(provider default)");
  line("LLM_MAX_DURATION", fmt::format("{}ms", config.chat.max_duration.count()));
  line("SSE_PING_INTERVAL", fmt::format("{}ms", config.chat.ping_interval.count()));
  line("STREAM_RESUME_WINDOW", fmt::format("{}ms", config.chat.resume_window.count()));
  line("DEMO_TOKEN_INTERVAL", fmt::format("{}ms", config.demo.token_interval.count()));
  line("MODELS_FILE", config.models_file);
  line("LLM_CONNECT_TIMEOUT", fmt::format("{}ms", config.llm_client.connect_timeout.count()));
  line("LLM_MAX_IDLE_CONNECTIONS", std::to_string(config.llm_client.max_idle_per_origin));
  line("LLM_FIRST_BYTE_TIMEOUT", fmt::format("{}ms", config.chat.first_byte_timeout.count()));
  line("LLM_IDLE_TIMEOUT", fmt::format("{}ms", config.chat.idle_timeout.count()));
  line("LLM_CA_FILE", config.llm_client.extra_ca_file);
  line("LLM_ALLOW_LINK_LOCAL", config.llm_client.address_policy.allow_link_local);
  for (const auto& upstream : config.llm.upstreams) {
    line(fmt::format("LLM_PROVIDER[{}]", upstream.api.name),
         fmt::format("{} key={} retries={} breaker={}/{}ms discover={}", upstream.api.base_url,
                     upstream.api.api_key.empty() ? "(none)" : "****", upstream.retry.retries, upstream.breaker.failures,
                     upstream.breaker.cooldown.count(), upstream.discover_models));
  }
  line("RATE_LIMIT_ENABLED", config.rate_limits.enabled);
  line("RATE_LIMIT_API", fmt::format("{}/s burst {}", config.rate_limits.api.rate_per_second, config.rate_limits.api.burst));
  line("RATE_LIMIT_LOGIN", fmt::format("{}/s burst {}", config.rate_limits.login.rate_per_second, config.rate_limits.login.burst));
  line("LOG_LEVEL", config.log.level);
  line("LOG_FORMAT", config.log.format);
  line("LOG_FILE", config.log.file.empty() ? "(stderr)" : config.log.file);
  line("ACCESS_LOG", s.access_log);
  line("CORS_ORIGINS", Join(config.cors_origins));
  line("ALLOWED_HOSTS", Join(config.allowed_hosts));
  line("MAX_CONNECTIONS", s.max_connections);
  line("MAX_BODY_SIZE", s.max_body_size);
  line("HEADER_TIMEOUT", fmt::format("{}ms", s.header_timeout.count()));
  line("BODY_TIMEOUT", fmt::format("{}ms", s.body_timeout.count()));
  line("KEEPALIVE_TIMEOUT", fmt::format("{}ms", s.keepalive_timeout.count()));
  line("WRITE_TIMEOUT", fmt::format("{}ms", s.write_timeout.count()));
  line("WEBSOCKET_MAX_MESSAGE", s.websocket.max_message);
  line("WEBSOCKET_IDLE_TIMEOUT", fmt::format("{}ms", s.websocket.idle_timeout.count()));
  line("SHUTDOWN_TIMEOUT", fmt::format("{}ms", s.shutdown_timeout.count()));
  line("GATEWAY_CACHE", config.response_cache.enabled);
  line("GATEWAY_CACHE_TTL", fmt::format("{}ms", config.response_cache.ttl.count()));
  line("GATEWAY_CACHE_MAX_BYTES", config.response_cache.max_bytes);
  line("USAGE_BUFFER_SIZE", config.usage.buffer_size);
  line("USAGE_BATCH_SIZE", config.usage.batch_size);
  line("USAGE_FLUSH_INTERVAL", fmt::format("{}ms", config.usage.flush_interval.count()));
  line("USAGE_SHUTDOWN_TIMEOUT", fmt::format("{}ms", config.usage.shutdown_timeout.count()));
  return out;
}


namespace {

// A development key kept in DATA_DIR/<file>: read it, or generate and store it (0600).
Expected<void> ResolveGeneratedKey(const AppConfig& config, std::string_view file, std::string_view variable,
                                   std::string& value, const std::function<std::string()>& generate) {
  if (!value.empty()) return {};
  const std::filesystem::path path = std::filesystem::path(config.data_dir) / file;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path);
    std::getline(in, value);
    if (!value.empty()) return {};
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} is empty; delete it or set {}", path.string(), variable));
  }
  std::filesystem::create_directories(config.data_dir, ec);
  value = generate();
  const mode_t previous = umask(077);  // the file is born 0600
  std::ofstream out(path);
  out << value << "\n";
  out.close();
  umask(previous);
  if (!out) return MakeError(ErrorCode::kInternal, fmt::format("cannot write {}", path.string()));
  log::Warn(fmt::format("{} is not set: generated one for development and stored it", variable),
            {{"path", path.string()}});
  return {};
}

}  // namespace

Expected<void> ResolveSecretKey(AppConfig& config) {
  return ResolveGeneratedKey(config, "secret_key", "SECRET_KEY", config.accounts.secret_key,
                             [] { return accounts::RandomToken(48); });
}

Expected<void> ResolveEncryptionKey(AppConfig& config) {
  auto resolved = ResolveGeneratedKey(config, "encryption_key", "ENCRYPTION_KEY", config.encryption_key,
                                      accounts::SecretBox::GenerateKeyBase64);
  if (!resolved) return resolved;
  auto box = accounts::SecretBox::FromBase64(config.encryption_key, config.encryption_key_previous);
  if (!box) return Unexpected{std::move(box).error()};
  return {};
}

}  // namespace chatd::app
