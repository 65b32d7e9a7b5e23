// The HTTP/1.1 server: one io_context per I/O thread, each with its own listening socket
// on the same port (SO_REUSEPORT), so a connection lives on one thread from accept to
// close and nothing in the request path is shared between threads but a few atomics.
// One coroutine per connection reads a request (header first, so the route's body limit
// is known before any body byte is read), runs the middleware and the handler, writes the
// response and loops while the connection is kept alive.
//
// Every wait has a deadline: the request header (HEADER_TIMEOUT, counted from the first
// byte), the body (BODY_TIMEOUT), an idle keep-alive connection (KEEPALIVE_TIMEOUT) and the
// response write. At MAX_CONNECTIONS the longest-idle connection of the accepting thread
// is closed to make room, so idle sockets cannot lock active clients out.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/metrics.hpp"
#include "http/middleware.hpp"
#include "http/router.hpp"
#include "http/websocket.hpp"

namespace chatd::http {

struct ServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;  // 0: any free port (see Server::port())
  std::size_t io_threads = 0;  // 0: one per core
  std::size_t max_connections = 10000;
  std::size_t max_body_size = 1024 * 1024;  // default per-route body limit
  std::size_t max_header_size = 16 * 1024;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds keepalive_timeout{75'000};
  std::chrono::milliseconds write_timeout{30'000};
  std::chrono::milliseconds shutdown_timeout{30'000};
  bool access_log = true;
  WebSocketConfig websocket;
};

class Server {
 public:
  Server(ServerConfig config, const Router& router, MiddlewareChain middleware, metrics::Registry& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds the listening sockets. kUnavailable with the reason when the address is taken.
  Expected<void> Listen();
  /// The bound port (useful with port 0). Valid after Listen().
  std::uint16_t port() const;
  std::size_t io_threads() const;

  /// Runs the I/O threads on the calling thread plus io_threads()-1 more; returns after a
  /// Shutdown() has drained the connections or its deadline has passed.
  void Run();
  /// Starts a graceful shutdown: stop accepting, close idle keep-alive connections, let
  /// in-flight requests finish (up to shutdown_timeout), then make Run() return.
  /// Thread-safe and idempotent.
  void Shutdown();
  /// The first I/O thread's context, for process-level tasks such as signal handling.
  asio::io_context& main_context();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chatd::http
