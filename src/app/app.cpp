// The composition root: the one place that knows every module. It builds the object graph
// from the configuration, in dependency order, and hands each piece what it needs.
#include "app/app.hpp"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <sys/resource.h>

#include "accounts/account_service.hpp"
#include "accounts/secret_store.hpp"
#include "api/accounts_api.hpp"
#include "api/archive_api.hpp"
#include "api/chat_api.hpp"
#include "api/conversations_api.hpp"
#include "api/gateway_api.hpp"
#include "api/guard.hpp"
#include "api/messages_api.hpp"
#include "api/operations.hpp"
#include "api/routes.hpp"
#include "api/search_api.hpp"
#include "api/usage_api.hpp"
#include "cache/rate_limiter.hpp"
#include "chat/conversation_archive.hpp"
#include "chat/conversation_service.hpp"
#include "chat/message_service.hpp"
#include "chat/search_service.hpp"
#include "core/blocking_pool.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "gateway/admission.hpp"
#include "gateway/gateway.hpp"
#include "gateway/key_limiter.hpp"
#include "gateway/response_cache.hpp"
#include "gateway/usage.hpp"
#include "gateway/usage_recorder.hpp"
#include "gateway/usage_service.hpp"
#include "http/client.hpp"
#include "http/client_ip.hpp"
#include "http/middleware.hpp"
#include "http/router.hpp"
#include "http/server.hpp"
#include "llm/call_metrics.hpp"
#include "llm/demo_provider.hpp"
#include "llm/model_registry.hpp"
#include "llm/router.hpp"
#include "store/open.hpp"
#include "store/usage_repository.hpp"

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

// Password hashing is CPU-bound: one thread per core, at a lower priority than the I/O
// threads, so a burst of logins slows logins, not everything else.
std::size_t HashingThreads() { return std::max(1u, std::thread::hardware_concurrency()); }
constexpr int kHashingNice = 10;

}  // namespace

int Serve(const AppConfig& loaded) {
  RaiseFileLimit();
  AppConfig config = loaded;
  if (!PrepareDataDir(config)) return 1;
  if (auto key = ResolveSecretKey(config); !key) {
    log::Error("cannot set up SECRET_KEY", {{"error", key.error().message}});
    return 1;
  }
  if (auto key = ResolveEncryptionKey(config); !key) {
    log::Error("cannot set up ENCRYPTION_KEY", {{"error", key.error().message}});
    return 1;
  }
  auto trusted_proxies = http::CidrSet::Parse(config.trusted_proxies);
  if (!trusted_proxies) {
    log::Error("invalid TRUSTED_PROXIES", {{"error", trusted_proxies.error().message}});
    return 2;
  }
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
  SystemClock clock;
  BlockingPool hashing_pool(HashingThreads(), 1024, "chatd-hash", kHashingNice);
  accounts::AccountService accounts(config.accounts, *database, hashing_pool, clock);
  auto limiter = cache::MakeInProcessRateLimiter(clock);
  api::Guard guard(accounts, *limiter, config.rate_limits);
  api::AccountsApi accounts_api(accounts, guard);
  chat::ConversationService conversations(*database, clock);
  api::ConversationsApi conversations_api(conversations);
  chat::MessageService messages(*database, clock);
  api::MessagesApi messages_api(messages);
  // Models: the built-in demo models, then the configured upstreams' (through the router:
  // fallbacks, retries, circuit breakers).
  llm::DemoProvider demo(config.demo);
  llm::ModelRegistry models(config.llm_model);
  for (const auto& model : llm::DemoProvider::Models()) {
    if (auto added = models.Add(demo, model); !added) {
      log::Error("cannot register a model", {{"model", model.id}, {"error", added.error().message}});
      return 1;
    }
  }
  auto llm_client = http::Client::Create(config.llm_client);
  if (!llm_client) {
    log::Error("cannot set up the LLM HTTP client", {{"error", llm_client.error().message}});
    return 2;
  }
  llm::Router model_router(config.llm, **llm_client, &metrics);
  if (model_router.upstream_count() > 0) {
    // Upstreams' model lists are fetched before serving, so the registry is complete (and
    // read-only) once requests arrive; a private context, bounded by the client's timeouts.
    // LLM_MODEL, unless a demo model: assumed to be an upstream's if its listing fails.
    std::string assumed = models.Resolve("") ? std::string() : config.llm_model;
    asio::io_context discovery(1);
    asio::co_spawn(discovery, model_router.Discover(std::move(assumed)), asio::detached);
    discovery.run();
  }
  if (auto registered = model_router.Register(models); !registered) {
    log::Error("invalid model configuration", {{"error", registered.error().message}});
    return 2;
  }
  if (auto fallback = models.Resolve(""); !fallback) {
    log::Error("LLM_MODEL names no known model", {{"model", config.llm_model}});
    return 2;
  }
  if (model_router.upstream_count() == 0) {
    log::Warn("no real LLM provider is configured: serving the built-in demo models", {{"default_model", config.llm_model}});
  } else {
    std::string names;
    for (const auto& upstream : config.llm.upstreams) names += (names.empty() ? "" : ",") + upstream.api.name;
    log::Info("LLM providers configured", {{"providers", names},
                                           {"models", model_router.models().size()},
                                           {"default_model", config.llm_model}});
  }
  chat::Generations generations(config.chat.resume_window);
  // A revoked credential ends what it started: every generation of the user, or only the
  // key's. (Streams end with them; WebSocket sessions will subscribe here too.)
  accounts.OnRevocation([&generations](const accounts::SessionRevocation& revocation) {
    generations.CancelAll(revocation.user_id, revocation.api_key_id);
  });
  llm::CallMetrics llm_metrics(metrics);  // model calls, from chat turns and the gateway alike
  chat::ChatMetrics chat_metrics(metrics, llm_metrics);
  chat::ChatService chat(config.chat, conversations, messages, models, generations, chat_metrics);
  api::ChatApi chat_api(chat, messages, generations, models, metrics);
  api::ChatSocket chat_socket(guard, chat, generations, metrics);
  accounts.OnRevocation([&chat_socket](const accounts::SessionRevocation& revocation) {
    chat_socket.Revoke(revocation.user_id, revocation.api_key_id);
  });
  chat::SearchService search(*database);
  api::SearchApi search_api(search);
  chat::ConversationArchive archive(*database, clock);
  api::ArchiveApi archive_api(archive);
  // Gateway: admission by the API key's limits and budgets (counters in this process,
  // started from the stored usage), and usage events written in the background.
  store::UsageRepository usage_events(*database);
  gateway::UsageRecorder usage_recorder(config.usage, usage_events, metrics);
  gateway::KeyLimiter key_limiter(
      [&accounts](std::string key_id) -> Task<Expected<std::shared_ptr<const accounts::KeyLimits>>> {
        co_return co_await accounts.ApiKeyLimits(key_id);
      },
      usage_events, models, clock, metrics);
  gateway::UsageService usage_reports(usage_events, clock);
  api::UsageApi usage_api(usage_reports);
  // The response cache (off unless GATEWAY_CACHE) asks the key's opt-out through the same
  // cached lookup as its limits.
  gateway::ResponseCache response_cache(
      config.response_cache,
      [&accounts](std::string key_id) -> Task<Expected<bool>> {
        auto limits = co_await accounts.ApiKeyLimits(key_id);
        if (!limits) co_return Unexpected{std::move(limits).error()};
        co_return (*limits)->response_cache;
      },
      clock, metrics);
  if (response_cache.enabled()) {
    log::Info("gateway response cache on", {{"ttl_ms", static_cast<std::int64_t>(config.response_cache.ttl.count())},
                                            {"max_bytes", static_cast<std::int64_t>(config.response_cache.max_bytes)}});
  }
  gateway::Gateway gateway(config.gateway, models, key_limiter, usage_recorder, clock, llm_metrics, &response_cache);
  api::GatewayApi gateway_api(guard, gateway);
  api::Services services{operations, guard,       accounts_api, conversations_api, messages_api, chat_api,
                         chat_socket, search_api, archive_api,  usage_api,         gateway_api};
  http::Router router;
  api::AddRoutes(router, services, config.api_prefix);

  http::MiddlewareChain middleware;
  middleware.push_back(http::MakeClientAddress(std::move(*trusted_proxies)));
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
        // Answers a dead process left "streaming" will never finish: say so. (With several
        // processes on one PostgreSQL this also marks a live one's answers; its next flush
        // writes "streaming" back.)
        if (auto interrupted = co_await messages.MarkInterrupted(); !interrupted) {
          log::Error("cannot mark interrupted generations", {{"error", interrupted.error().message}});
        } else if (*interrupted > 0) {
          log::Info("marked interrupted generations incomplete", {{"count", *interrupted}});
        }
        if (!config.admin_email.empty()) {
          auto admin = co_await accounts.CreateUser(config.admin_email, config.admin_password, "", accounts::Role::kAdmin);
          if (admin) {
            log::Info("created the admin user from ADMIN_EMAIL", {{"email", admin->email}});
          } else if (admin.error().code != ErrorCode::kConflict) {
            log::Error("cannot create the admin user from ADMIN_EMAIL", {{"error", admin.error().message}});
            exit_code = 2;
            server.Shutdown();
            co_return;
          }
        }
        operations.MarkReady();
        log::Info("ready");
      },
      asio::detached);

  usage_recorder.Start();
  server.Run();
  signals.cancel();
  // Every request has ended: store the usage still buffered, then close the database.
  usage_recorder.Stop();
  hashing_pool.Stop();
  database->Close();
  log::Info("stopped", {{"exit_code", exit_code}});
  return exit_code;
}

namespace {

// The shape of every one-shot command: open the database, apply pending migrations, run
// `command` (a coroutine answering an exit code) on a private io_context, close.
int RunCommand(const AppConfig& config, const std::function<Task<int>(store::Database&)>& command) {
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
        if (*applied > 0) log::Info("migrations applied", {{"count", *applied}});
        exit_code = co_await command(*database);
      },
      asio::detached);
  context.run();
  database->Close();
  return exit_code;
}

}  // namespace

int Migrate(const AppConfig& config) {
  return RunCommand(config, [](store::Database&) -> Task<int> { co_return 0; });
}

int CreateUser(const AppConfig& loaded, const NewUserRequest& request) {
  AppConfig config = loaded;
  if (auto key = ResolveSecretKey(config); !key) {
    log::Error("cannot set up SECRET_KEY", {{"error", key.error().message}});
    return 1;
  }
  SystemClock clock;
  BlockingPool hashing_pool(1, 4, "chatd-hash");
  const int exit_code = RunCommand(config, [&](store::Database& database) -> Task<int> {
    accounts::AccountService accounts(config.accounts, database, hashing_pool, clock);
    auto user = co_await accounts.CreateUser(request.email, request.password, request.name,
                                             request.admin ? accounts::Role::kAdmin : accounts::Role::kUser);
    if (!user) {
      std::fprintf(stderr, "chatd: cannot create the user: %s\n", user.error().message.c_str());
      co_return user.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    std::printf("%s\n", user->id.c_str());
    co_return 0;
  });
  hashing_pool.Stop();
  return exit_code;
}

int RotateSecrets(const AppConfig& loaded) {
  AppConfig config = loaded;
  // Without ENCRYPTION_KEY (development), the generated key, if there is one.
  if (auto key = ResolveEncryptionKey(config); !key) {
    log::Error("cannot set up ENCRYPTION_KEY", {{"error", key.error().message}});
    return 2;
  }
  auto box = accounts::SecretBox::FromBase64(config.encryption_key, config.encryption_key_previous);
  if (!box) {
    log::Error("invalid encryption keys", {{"error", box.error().message}});
    return 2;
  }
  SystemClock clock;
  return RunCommand(config, [&](store::Database& database) -> Task<int> {
    accounts::SecretStore secrets(database, *box, clock);
    auto report = co_await secrets.Rotate();
    if (!report) {
      log::Error("rotation stopped", {{"error", report.error().message}});
      co_return 1;
    }
    log::Info("secrets rotated",
              {{"key_id", box->current_key_id()}, {"rotated", report->rotated}, {"unchanged", report->unchanged}});
    std::printf("re-encrypted %d secret(s) under key %s; %d already were\n", report->rotated,
                box->current_key_id().c_str(), report->unchanged);
    co_return 0;
  });
}

}  // namespace chatd::app
