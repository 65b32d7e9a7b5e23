// The composition root: the one place that knows every module. It builds the object graph
// from the configuration, in dependency order, and hands each piece what it needs.
#include "app/app.hpp"

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <memory>

#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include "api/operations.hpp"
#include "api/routes.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "http/middleware.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "store/open.hpp"

namespace chatd::app {

namespace {

// Every connection is a descriptor: take all the kernel allows us.
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

bool PrepareDataDir(const AppConfig& config) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    log::Error("cannot create DATA_DIR", {{"path", config.data_dir}, {"error", ec.message()}});
    return false;
  }
  return true;
}

Expected<std::unique_ptr<store::Database>> OpenStore(const AppConfig& config) {
  auto database = store::OpenDatabase(config.database);
  if (!database) {
    log::Error("cannot open the database",
               {{"database_url", store::RedactDatabaseUrl(config.database.url)}, {"error", database.error().message}});
  }
  return database;
}

}  // namespace

int Serve(const AppConfig& config) {
  RaiseFileLimit();
  if (!PrepareDataDir(config)) return 1;
  auto opened = OpenStore(config);
  if (!opened) return 1;
  std::unique_ptr<store::Database> database = std::move(*opened);

  metrics::Registry metrics;
  metrics.AddCollector([&database](std::string& out) {
    const store::PoolStats stats = database->Stats();
    metrics::AppendGauge(out, "db_pool_size", "Database connections the pool may hold.", static_cast<double>(stats.size));
    metrics::AppendGauge(out, "db_pool_checked_out", "Database connections in use.", static_cast<double>(stats.checked_out));
  });
  metrics.AddCollector(metrics::AppendProcessMetrics);

  api::Operations operations(
      {api::HealthCheck{"database", [&database]() -> Task<bool> { co_return (co_await database->Ping()).has_value(); }}},
      metrics);
  api::Services services{operations};
  http::Router router;
  api::AddRoutes(router, services);

  http::MiddlewareChain middleware;
  if (!config.allowed_hosts.empty()) middleware.push_back(http::MakeAllowedHosts(config.allowed_hosts));
  if (!config.cors_origins.empty()) middleware.push_back(http::MakeCors(config.cors_origins));
  middleware.push_back(http::MakeSecurityHeaders());

  http::Server server(config.server, router, std::move(middleware), metrics);
  if (auto listening = server.Listen(); !listening) {
    log::Error("cannot start the server", {{"error", listening.error().message}});
    return 1;
  }
  log::Info("listening", {{"address", config.server.host},
                          {"port", server.port()},
                          {"io_threads", server.io_threads()},
                          {"database", database->dialect() == store::Dialect::kSqlite ? "sqlite" : "postgresql"}});

  asio::signal_set signals(server.main_context(), SIGINT, SIGTERM);
  signals.async_wait([&server](const boost::system::error_code& ec, int signal) {
    if (!ec) {
      log::Info("signal received", {{"signal", signal}});
      server.Shutdown();
    }
  });

  int exit_code = 0;
  // Startup work that needs the database runs once the server is up, so /health and
  // /ready can report on it; /ready turns 200 when it is done.
  asio::co_spawn(
      server.main_context(),
      [&]() -> Task<void> {
        if (config.migrate_on_start) {
          auto applied = co_await database->Migrate();
          if (!applied) {
            log::Error("migrations failed", {{"error", applied.error().message}});
            exit_code = 1;
            server.Shutdown();
            co_return;
          }
          if (*applied > 0) log::Info("migrations applied", {{"count", *applied}});
        }
        operations.MarkReady();
        log::Info("ready");
      },
      asio::detached);

  server.Run();
  signals.cancel();
  database->Close();
  log::Info("stopped", {{"exit_code", exit_code}});
  return exit_code;
}

int Migrate(const AppConfig& config) {
  if (!PrepareDataDir(config)) return 1;
  auto opened = OpenStore(config);
  if (!opened) return 1;
  std::unique_ptr<store::Database> database = std::move(*opened);

  asio::io_context context(1);
  int exit_code = 1;
  asio::co_spawn(
      context,
      [&]() -> Task<void> {
        auto applied = co_await database->Migrate();
        if (!applied) {
          log::Error("migrations failed", {{"error", applied.error().message}});
          co_return;
        }
        log::Info("migrations applied", {{"count", *applied}});
        exit_code = 0;
      },
      asio::detached);
  context.run();
  database->Close();
  return exit_code;
}

}  // namespace chatd::app
