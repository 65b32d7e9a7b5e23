#include "app/config.hpp"

#include <filesystem>
#include <thread>

#include <fmt/format.h>

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

}  // namespace

Expected<AppConfig> LoadConfig(const EnvSource& env) {
  AppConfig config;
  ConfigReader read(env);
  using std::chrono::milliseconds;

  config.environment = read.OneOf("ENVIRONMENT", "development", {"development", "production", "test"});
  config.data_dir = read.String("DATA_DIR", "./data");
  config.secret_key = read.String("SECRET_KEY", "");
  config.migrate_on_start = read.Bool("MIGRATE_ON_START", true);
  config.cors_origins = read.List("CORS_ORIGINS");
  config.allowed_hosts = read.List("ALLOWED_HOSTS");

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
  server.shutdown_timeout = read.Duration("SHUTDOWN_TIMEOUT", milliseconds(30'000));
  server.access_log = read.Bool("ACCESS_LOG", true);
  config.blocking_threads = static_cast<std::size_t>(read.Integer("BLOCKING_THREADS", 8, 1, 1024));

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

  // Checks that span values or need more than a parser.
  if (!(db.url.rfind("sqlite:", 0) == 0 || db.url.rfind("postgresql://", 0) == 0 || db.url.rfind("postgres://", 0) == 0)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("DATABASE_URL='{}' has an unsupported scheme; expected sqlite:///path or postgresql://...",
                                 store::RedactDatabaseUrl(db.url)));
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
  line("SECRET_KEY", config.secret_key.empty() ? "(not set)" : "****");
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
  line("SHUTDOWN_TIMEOUT", fmt::format("{}ms", s.shutdown_timeout.count()));
  line("BLOCKING_THREADS", config.blocking_threads);
  return out;
}

}  // namespace chatd::app
