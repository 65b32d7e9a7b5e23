#include "http/server.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <memory>
#include <atomic>
#include <cmath>
#include <ctime>
#include <iterator>
#include <limits>
#include <list>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "http/send_now.hpp"
#include "http/websocket_session.hpp"

namespace chatd::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

/// Per-route metrics, resolved once so a request touches only atomics.
struct RouteStats {
  std::string method;
  std::string route;
  std::array<std::atomic<metrics::Counter*>, 600> by_status{};
  metrics::Histogram* duration = nullptr;
};

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr std::size_t kMaxRequestIdLength = 128;

// Boost 1.74's Beast speaks boost::string_view.
std::string_view Sv(beast::string_view view) { return {view.data(), view.size()}; }

bool SaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// The Date header, formatted at most once a second per thread.
std::string_view HttpDate() {
  thread_local std::time_t cached_second = 0;
  thread_local char cached[64] = {};
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT", &utc);
  }
  return cached;
}

// One accepted connection, listed in its worker so shutdown and eviction can find it.
// Only ever touched from its worker's thread.
struct Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool idle = true;  // waiting for the next request to start
  WebSocketSession* websocket = nullptr;  // while upgraded: for a 1001 close at shutdown
  Clock::time_point idle_since = Clock::now();
  std::list<Connection*>::iterator position;
};

// A request's watch on its client (ResponseStream::WatchClient), armed a little late:
// most requests are answered sooner, and arming costs a socket wait per request — an
// epoll_ctl, then a cancellation when the handler returns. Queued in its worker oldest
// first; a tick every kWatchDelay arms those that have waited a full delay, so a client
// that leaves is noticed within 2 × kWatchDelay (the gateway promises to abort the
// upstream call within 1 s).
constexpr auto kWatchDelay = std::chrono::milliseconds(50);

class DeferredWatch {
 public:
  virtual void Arm() = 0;

 protected:
  ~DeferredWatch() = default;

 private:
  friend class DeferredWatches;
  DeferredWatch* prev_ = nullptr;
  DeferredWatch* next_ = nullptr;
  Clock::time_point since_{};
  bool queued_ = false;
};

// An intrusive list (no allocation per request), touched only from its worker's thread.
class DeferredWatches {
 public:
  /// Queues `watch`; `start_ticking` runs when the queue was idle.
  template <typename StartTicking>
  void Add(DeferredWatch& watch, StartTicking&& start_ticking) {
    watch.since_ = Clock::now();
    watch.queued_ = true;
    watch.prev_ = tail_;
    watch.next_ = nullptr;
    (tail_ != nullptr ? tail_->next_ : head_) = &watch;
    tail_ = &watch;
    if (!ticking_) {
      ticking_ = true;
      start_ticking();
    }
  }

  void Remove(DeferredWatch& watch) {
    if (!watch.queued_) return;
    watch.queued_ = false;
    (watch.prev_ != nullptr ? watch.prev_->next_ : head_) = watch.next_;
    (watch.next_ != nullptr ? watch.next_->prev_ : tail_) = watch.prev_;
    watch.prev_ = watch.next_ = nullptr;
  }

  /// Arms the watches that have waited kWatchDelay. False when the queue is empty: the
  /// ticking stops (the next Add starts it again).
  bool Tick() {
    const Clock::time_point due = Clock::now() - kWatchDelay;
    while (head_ != nullptr && head_->since_ <= due) {
      DeferredWatch& watch = *head_;
      Remove(watch);
      watch.Arm();  // starts an asynchronous wait: never reenters the queue
    }
    ticking_ = head_ != nullptr;
    return ticking_;
  }

 private:
  DeferredWatch* head_ = nullptr;
  DeferredWatch* tail_ = nullptr;
  bool ticking_ = false;
};

// Members are destroyed in reverse: the acceptor first, then the context, whose
// destructor destroys the suspended connection coroutines, which unlist themselves from
// `connections` and `watches` — so those must outlive the context (and the timer, bound
// to the context, must not).
struct Worker {
  std::list<Connection*> connections;
  DeferredWatches watches;
  asio::io_context context{1};  // one thread per context: Asio can skip its locking
  asio::steady_timer watch_tick{context};
  std::optional<tcp::acceptor> acceptor;

  void DeferWatch(DeferredWatch& watch) {
    watches.Add(watch, [this] { ScheduleWatchTick(); });
  }

  void ScheduleWatchTick() {
    watch_tick.expires_after(kWatchDelay);
    watch_tick.async_wait([this](error_code ec) {
      if (!ec && watches.Tick()) ScheduleWatchTick();
    });
  }
};

}  // namespace

struct Server::Impl {
  Impl(ServerConfig cfg, const Router& r, MiddlewareChain mw, metrics::Registry& registry)
      : config(std::move(cfg)),
        router(r),
        middleware(std::move(mw)),
        requests_total(registry.AddCounter("http_requests_total", "HTTP requests answered.",
                                           {"method", "route", "status"})),
        request_duration(registry.AddHistogram("http_request_duration_seconds",
                                               "Time from a request's header to its response.",
                                               {"method", "route"})),
        in_flight(registry.AddGauge("http_requests_in_flight", "HTTP requests being handled.").WithLabels({})),
        open_connections(registry.AddGauge("http_connections_open", "Open client connections.").WithLabels({})),
        rejected_connections(registry.AddCounter("http_connections_rejected_total",
                                                 "Connections closed at MAX_CONNECTIONS with no idle one to evict.")
                                 .WithLabels({})),
        evicted_connections(registry.AddCounter("http_connections_evicted_total",
                                                "Idle connections closed to make room at MAX_CONNECTIONS.")
                                .WithLabels({})) {
    if (config.io_threads == 0) config.io_threads = std::max(1u, std::thread::hardware_concurrency());
    for (const auto& route : router.routes()) {
      auto stats = std::make_unique<RouteStats>();
      stats->method = std::string(MethodName(route->method));
      stats->route = route->pattern;
      stats->duration = &request_duration.WithLabels({stats->method, stats->route});
      route->stats = stats.get();
      route_stats.push_back(std::move(stats));
    }
    for (std::size_t m = 0; m < kMethodCount; ++m) {
      unmatched[m].method = std::string(MethodName(static_cast<Method>(m)));
      unmatched[m].route = "unmatched";
      unmatched[m].duration = &request_duration.WithLabels({unmatched[m].method, "unmatched"});
    }
    for (std::size_t i = 0; i < config.io_threads; ++i) workers.push_back(std::make_unique<Worker>());
  }

  Task<void> Accept(Worker& worker);
  Task<void> Serve(Worker& worker, tcp::socket socket);
  Task<Response> Dispatch(Request& request, const RouteMatch& match);
  // Runs the middleware's OnResponse and adds the headers every response carries.
  void Decorate(const Request& request, Response& response);
  // Counts the request in metrics and writes the access log line.
  void Record(const Request& request, int status, std::size_t bytes, RouteStats& stats);
  bool EvictIdle(Worker& worker);
  Task<void> WatchShutdown();
  class StreamWriter;

  ServerConfig config;
  const Router& router;
  MiddlewareChain middleware;
  metrics::Family<metrics::Counter>& requests_total;
  metrics::Family<metrics::Histogram>& request_duration;
  metrics::Gauge& in_flight;
  metrics::Gauge& open_connections;
  metrics::Counter& rejected_connections;
  metrics::Counter& evicted_connections;
  std::atomic<std::size_t> active{0};
  std::atomic<bool> draining{false};
  std::uint16_t bound_port = 0;
  std::vector<std::unique_ptr<RouteStats>> route_stats;
  std::array<RouteStats, kMethodCount> unmatched;
  // Last, so it is destroyed first: connection coroutines still reference the above.
  std::vector<std::unique_ptr<Worker>> workers;
};

Task<void> Server::Impl::Accept(Worker& worker) {
  while (!draining.load(std::memory_order_relaxed)) {
    error_code ec;
    tcp::socket socket = co_await worker.acceptor->async_accept(asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || draining.load()) co_return;
      // Out of descriptors or a transient network error: pause rather than spin.
      log::Warn("accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(worker.context, std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(kUseAwaitable, ec));
      continue;
    }
    if (active.load(std::memory_order_relaxed) >= config.max_connections && !EvictIdle(worker)) {
      rejected_connections.Inc();
      socket.close(ec);
      continue;
    }
    asio::co_spawn(worker.context, Serve(worker, std::move(socket)), asio::detached);
  }
}

bool Server::Impl::EvictIdle(Worker& worker) {
  Connection* oldest = nullptr;
  for (Connection* connection : worker.connections) {
    if (connection->idle && (oldest == nullptr || connection->idle_since < oldest->idle_since)) oldest = connection;
  }
  if (oldest == nullptr) return false;
  error_code ec;
  oldest->stream.socket().close(ec);
  oldest->idle = false;  // its read fails now; don't pick it twice
  evicted_connections.Inc();
  return true;
}

namespace {

// Shuts down our side and drains what the client still sends for a short while, so the
// response we just wrote is not destroyed by a reset when unread body bytes remain.
Task<void> LingeringClose(beast::tcp_stream& stream) {
  error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(std::chrono::seconds(1));
  std::array<char, 16 * 1024> sink;
  std::size_t drained = 0;
  while (!ec && drained < 16 * 1024 * 1024) {
    drained += co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(kUseAwaitable, ec));
  }
  stream.socket().close(ec);
}

// A duration as seconds with six decimals ("0.000123"), X-Process-Time's form; by hand,
// as fmt's fixed-precision float formatting cost ~800 instructions on every response.
std::string SecondsText(std::chrono::nanoseconds elapsed) {
  const std::int64_t micros =
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
  std::array<char, 32> text{};
  char* end = std::to_chars(text.data(), text.data() + 20, micros / 1'000'000).ptr;
  *end++ = '.';
  std::int64_t fraction = micros % 1'000'000;
  for (int digit = 5; digit >= 0; --digit, fraction /= 10) end[digit] = static_cast<char>('0' + fraction % 10);
  return std::string(text.data(), end + 6);
}

Response ErrorResponse(ErrorCode code, std::string message) {
  Response response = Response::FromError(code, std::move(message));
  response.close_connection = true;
  return response;
}

// The Beast response for ours. HEAD keeps the Content-Length of the body it omits.
// The status line and header of a response, written by hand into one string. Beast's
// serializer walks a buffers_cat_view over every field on each write, and its fields
// container allocates per field: together about a tenth of a proxied request's CPU.
// `body_size`: the Content-Length to announce (nullopt: chunked transfer encoding).
std::string ResponseHead(const Response& response, unsigned version, bool keep_alive,
                         std::optional<std::size_t> body_size) {
  const auto status = static_cast<bhttp::status>(response.status);
  const std::string_view reason = Sv(bhttp::obsolete_reason(status));
  std::string head;
  head.reserve(256);
  head += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  head += std::to_string(response.status);
  head += ' ';
  head += reason;
  head += "\r\nDate: ";
  head += HttpDate();
  head += "\r\nServer: chatd\r\n";
  for (const auto& [name, value] : response.headers) {
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  // No body framing for 1xx, 204 and 304 (RFC 9110 8.6, 9112 6.1).
  const bool bodiless = bhttp::to_status_class(status) == bhttp::status_class::informational ||
                        status == bhttp::status::no_content || status == bhttp::status::not_modified;
  if (!bodiless) {
    if (body_size) {
      head += "Content-Length: ";
      head += std::to_string(*body_size);
      head += "\r\n";
    } else {
      head += "Transfer-Encoding: chunked\r\n";
    }
  }
  if (version == 10 && keep_alive) head += "Connection: keep-alive\r\n";
  if (version != 10 && !keep_alive) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

// Every write starts with SendNow (http/send_now.hpp) on the connection's socket, which
// Serve puts in non-blocking mode. SendRest sends what it could not, asynchronously:
// waits for room in the socket, under `timeout`.
template <typename Buffers>
Task<error_code> SendRest(beast::tcp_stream& stream, const Buffers& buffers, std::size_t sent,
                          std::chrono::milliseconds timeout) {
  beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(sent);
  error_code ec;
  stream.expires_after(timeout);
  co_await asio::async_write(stream, rest, asio::redirect_error(kUseAwaitable, ec));
  co_return ec;
}

// Writes a whole response: its head and (unless `head_only`, for HEAD) its body in one
// gathered write.
Task<error_code> WriteResponse(beast::tcp_stream& stream, const Response& response, unsigned version,
                               bool head_only, bool keep_alive, std::chrono::milliseconds timeout) {
  const std::string head = ResponseHead(response, version, keep_alive, response.body.size());
  const std::array<asio::const_buffer, 2> buffers{
      asio::buffer(head), head_only ? asio::const_buffer() : asio::buffer(response.body)};
  error_code ec;
  const std::size_t sent = SendNow(stream.socket(), buffers, ec);
  if (!ec && sent < asio::buffer_size(buffers)) ec = co_await SendRest(stream, buffers, sent, timeout);
  co_return ec;
}

}  // namespace

// The ResponseStream of one request: chunked transfer encoding straight to the socket.
class Server::Impl::StreamWriter final : public ResponseStream, private DeferredWatch {
 public:
  StreamWriter(Impl& impl, Worker& worker, beast::tcp_stream& stream, beast::flat_buffer& read_buffer,
               const Request& request)
      : impl_(impl), worker_(worker), stream_(stream), read_buffer_(read_buffer), request_(request) {}

  Task<bool> Begin(Response head) override {
    if (begun_) throw std::logic_error("ResponseStream::Begin called twice");
    begun_ = true;
    // A stream may last minutes, and nothing is read from its connection meanwhile: the
    // request's read buffer (512 bytes and up) goes back until the next request.
    if (read_buffer_.size() == 0) read_buffer_.shrink_to_fit();
    status_ = head.status;
    impl_.Decorate(request_, head);
    const std::string out =
        ResponseHead(head, request_.version, !impl_.draining.load(std::memory_order_relaxed), std::nullopt);
    const asio::const_buffer buffer = asio::buffer(out);
    error_code ec;
    const std::size_t sent = SendNow(stream_.socket(), buffer, ec);
    if (!ec && sent < buffer.size()) ec = co_await SendRest(stream_, buffer, sent, impl_.config.write_timeout);
    failed_ = static_cast<bool>(ec);
    co_return !failed_;
  }

  Task<bool> Write(std::string_view data) override {
    if (!begun_) throw std::logic_error("ResponseStream::Write called before Begin");
    if (failed_) co_return false;
    if (data.empty()) co_return true;  // an empty chunk would end the body
    // One chunk: its size in hex, the data, CRLF (RFC 9112 7.1), in one gathered write.
    std::array<char, 20> size{};
    auto [end, ignored] = std::to_chars(size.data(), size.data() + size.size() - 2, data.size(), 16);
    *end++ = '\r';
    *end++ = '\n';
    static constexpr std::string_view kCrlf = "\r\n";
    const std::array<asio::const_buffer, 3> chunk{asio::buffer(size.data(), static_cast<std::size_t>(end - size.data())),
                                                  asio::buffer(data.data(), data.size()),
                                                  asio::buffer(kCrlf.data(), kCrlf.size())};
    error_code ec;
    const std::size_t sent = SendNow(stream_.socket(), chunk, ec);
    if (!ec && sent < asio::buffer_size(chunk)) ec = co_await SendRest(stream_, chunk, sent, impl_.config.write_timeout);
    failed_ = static_cast<bool>(ec);
    bytes_ += data.size();
    co_return !failed_;
  }

  /// Sends the last chunk. True when the connection can serve another request.
  Task<bool> End() {
    if (failed_) co_return false;
    static constexpr std::string_view kLastChunk = "0\r\n\r\n";
    const asio::const_buffer buffer(kLastChunk.data(), kLastChunk.size());
    error_code ec;
    const std::size_t sent = SendNow(stream_.socket(), buffer, ec);
    if (!ec && sent < buffer.size()) ec = co_await SendRest(stream_, buffer, sent, impl_.config.write_timeout);
    co_return !ec;
  }

  bool begun() const { return begun_; }
  int status() const { return status_; }
  std::size_t bytes() const { return bytes_; }

  // After kWatchDelay (DeferredWatch), waits for the socket to turn readable on the raw
  // socket (not through tcp_stream, whose write deadlines would time the wait out), then
  // peeks: end of stream or an error means the client is gone; data means it sent another
  // request, which is not ours to read.
  void WatchClient(std::function<void()> on_gone) override {
    if (watching_) throw std::logic_error("ResponseStream::WatchClient called twice");
    watching_ = true;
    on_gone_ = std::move(on_gone);
    worker_.DeferWatch(*this);
  }

  /// Ends watching; the handler has returned. Before the server's own writes and reads.
  void StopWatching() {
    if (!watching_) return;
    watching_ = false;
    worker_.watches.Remove(*this);
    on_gone_ = nullptr;
    if (!watch_) return;  // never armed
    watch_->active = false;
    watch_->on_gone = nullptr;
    error_code ignored;
    stream_.socket().cancel(ignored);  // the pending wait; nothing else is pending now
    watch_.reset();
  }

  ~StreamWriter() override { StopWatching(); }

 private:
  struct Watch {
    bool active = true;
    std::function<void()> on_gone;
  };

  // The delay is over (DeferredWatches::Tick), the handler still running.
  void Arm() override {
    watch_ = std::make_shared<Watch>();
    watch_->on_gone = std::move(on_gone_);
    ArmWatch(watch_);
  }

  void ArmWatch(const std::shared_ptr<Watch>& watch) {
    stream_.socket().async_wait(tcp::socket::wait_read, [this, watch](error_code ec) {
      if (!watch->active || ec == asio::error::operation_aborted) return;
      char byte = 0;
      const ssize_t peeked = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (!ec && peeked > 0) {  // a pipelined request: leave it to the server
        watch->active = false;
        return;
      }
      if (!ec && peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        ArmWatch(watch);  // spurious wake-up
        return;
      }
      watch->active = false;
      auto on_gone = std::move(watch->on_gone);
      watch->on_gone = nullptr;
      if (on_gone) on_gone();
    });
  }

  bool watching_ = false;
  std::function<void()> on_gone_;  // until armed
  std::shared_ptr<Watch> watch_;   // once armed
  Impl& impl_;
  Worker& worker_;
  beast::tcp_stream& stream_;
  beast::flat_buffer& read_buffer_;
  const Request& request_;
  bool begun_ = false;
  bool failed_ = false;
  int status_ = 0;
  std::size_t bytes_ = 0;
};

Task<void> Server::Impl::Serve(Worker& worker, tcp::socket socket) {
  Connection connection(std::move(socket));
  connection.position = worker.connections.insert(worker.connections.end(), &connection);
  active.fetch_add(1, std::memory_order_relaxed);
  open_connections.Inc();
  struct Unlist {
    Impl& impl;
    Worker& worker;
    Connection& connection;
    ~Unlist() {
      worker.connections.erase(connection.position);
      impl.active.fetch_sub(1, std::memory_order_relaxed);
      impl.open_connections.Dec();
    }
  } unlist{*this, worker, connection};

  error_code ec;
  std::string remote_address;
  if (auto endpoint = connection.stream.socket().remote_endpoint(ec); !ec) remote_address = endpoint.address().to_string();
  connection.stream.socket().set_option(tcp::no_delay(true), ec);
  // Writes try a plain send first (SendNow): in non-blocking mode a full socket answers
  // would_block instead of blocking the I/O thread. Asynchronous operations are unchanged.
  connection.stream.socket().non_blocking(true, ec);

  beast::flat_buffer buffer(config.max_header_size + 64 * 1024);
  const Clock::time_point connected_at = Clock::now();
  bool first_request = true;

  while (true) {
    // Wait for the next request to start, without holding a read buffer for idle sockets.
    Clock::time_point started_at = connected_at;
    if (buffer.size() == 0) {
      connection.idle = true;
      connection.idle_since = Clock::now();
      if (draining.load(std::memory_order_relaxed)) break;
      connection.stream.expires_after(first_request ? config.header_timeout : config.keepalive_timeout);
      const std::size_t n =
          co_await connection.stream.async_read_some(buffer.prepare(512), asio::redirect_error(kUseAwaitable, ec));
      if (ec) break;
      buffer.commit(n);
      connection.idle = false;
      if (!first_request) started_at = Clock::now();
    }
    connection.idle = false;
    first_request = false;

    // The header must arrive within HEADER_TIMEOUT of its first byte (of connecting, for
    // the first request): a deadline for the whole header, not per read, defeats clients
    // that trickle bytes.
    connection.stream.expires_at(started_at + config.header_timeout);
    bhttp::request_parser<bhttp::empty_body> head;
    head.header_limit(static_cast<std::uint32_t>(config.max_header_size));
    head.body_limit(std::numeric_limits<std::uint64_t>::max());  // the route decides, below
    co_await bhttp::async_read_header(connection.stream, buffer, head, asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (ec == bhttp::error::header_limit || ec == bhttp::error::bad_method || ec == bhttp::error::bad_target ||
          ec == bhttp::error::bad_version || ec == bhttp::error::bad_field || ec == bhttp::error::bad_value ||
          ec == bhttp::error::bad_line_ending || ec == bhttp::error::bad_content_length ||
          ec == bhttp::error::bad_transfer_encoding || ec == bhttp::error::bad_chunk) {
        Response response = ec == bhttp::error::header_limit
                                ? ErrorResponse(ErrorCode::kInvalidArgument, "request header is too large")
                                : ErrorResponse(ErrorCode::kInvalidArgument, "malformed HTTP request");
        if (ec == bhttp::error::header_limit) response.status = 431;
        co_await WriteResponse(connection.stream, response, 11, false, false, config.write_timeout);
        co_await LingeringClose(connection.stream);
      }
      break;
    }

    in_flight.Inc();
    struct InFlight {
      metrics::Gauge& gauge;
      ~InFlight() { gauge.Dec(); }
    } in_flight_guard{in_flight};

    Request request;
    request.start = Clock::now();
    request.remote_address = remote_address;
    request.client_address = remote_address;  // MakeClientAddress may replace it
    const auto& header = head.get();
    {
      const std::string_view id = Sv(header["X-Request-ID"]);
      request.request_id = SaneRequestId(id) ? std::string(id) : NewUuidV7();
    }
    const Method method = ParseMethod(Sv(header.method_string()));
    const std::string_view target = Sv(header.target());
    const std::string_view path = target.substr(0, target.find('?'));
    RouteMatch match = router.Match(method, path);
    request.route = match.route;
    RouteStats& stats = match.route != nullptr ? *match.route->stats : unmatched[static_cast<std::size_t>(method)];

    const std::size_t body_limit =
        match.route != nullptr && match.route->options.body_limit > 0 ? match.route->options.body_limit
                                                                       : config.max_body_size;
    const bool has_body = head.chunked() || head.content_length().value_or(0) > 0;

    // Too large by its own declaration: answer now, before reading a byte of the body.
    std::optional<Response> early;
    if (head.content_length() && *head.content_length() > body_limit) {
      early = ErrorResponse(ErrorCode::kPayloadTooLarge,
                            fmt::format("request body is larger than the limit of {} bytes", body_limit));
    }

    std::optional<bhttp::request_parser<bhttp::string_body>> full;
    if (!early && has_body) {
      if (header.version() == 11 && beast::iequals(header[bhttp::field::expect], "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        connection.stream.expires_after(config.write_timeout);
        co_await asio::async_write(connection.stream, asio::buffer(kContinue.data(), kContinue.size()),
                                   asio::redirect_error(kUseAwaitable, ec));
        if (ec) break;
      }
      full.emplace(std::move(head));
      full->body_limit(body_limit);
      connection.stream.expires_after(config.body_timeout);
      co_await bhttp::async_read(connection.stream, buffer, *full, asio::redirect_error(kUseAwaitable, ec));
      if (ec == bhttp::error::body_limit) {
        early = ErrorResponse(ErrorCode::kPayloadTooLarge,
                              fmt::format("request body is larger than the limit of {} bytes", body_limit));
      } else if (ec == beast::error::timeout) {
        early = ErrorResponse(ErrorCode::kRequestTimeout, "request body was not received in time");
      } else if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                 ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        break;  // the client went away
      } else if (ec) {
        early = ErrorResponse(ErrorCode::kInvalidArgument, "malformed request body");
      }
    }

    // From here the message lives in `full` (when a body was read) or `head`.
    const bhttp::request_header<>& message =
        full ? static_cast<const bhttp::request_header<>&>(full->get()) : head.get();
    request.method = method;
    request.method_name = Sv(message.method_string());
    request.target = Sv(message.target());
    request.path = request.target.substr(0, request.target.find('?'));
    if (const auto q = request.target.find('?'); q != std::string_view::npos) request.query = request.target.substr(q + 1);
    request.version = message.version();
    request.headers.reserve(static_cast<std::size_t>(std::distance(message.begin(), message.end())));
    for (const auto& field : message) request.headers.emplace_back(Sv(field.name_string()), Sv(field.value()));
    if (full && !early) request.body = std::move(full->get().body());
    request.params = std::move(match.params);

    StreamWriter writer(*this, worker, connection.stream, buffer, request);
    request.stream = &writer;
    // On the heap: inline, the session (its timers, queue and buffer) would enlarge every
    // connection's coroutine frame, and so every open stream's memory.
    std::unique_ptr<WebSocketSession> websocket;
    if (!early && !full && match.route != nullptr && match.route->options.websocket &&
        beast::websocket::is_upgrade(head.get())) {
      websocket = std::make_unique<WebSocketSession>(connection.stream, head.get(), config.websocket);
      request.upgrade = websocket.get();
      connection.websocket = websocket.get();
    }
    // Not `early ? ... : co_await ...`: GCC 12 miscompiles co_await inside ?: and &&.
    Response response;
    if (early) {
      response = std::move(*early);
    } else {
      response = co_await Dispatch(request, match);
    }
    writer.StopWatching();
    if (websocket && websocket->accepted()) {
      co_await websocket->Finish();
      connection.websocket = nullptr;
      Record(request, 101, 0, stats);
      break;  // the connection was the socket's
    }
    connection.websocket = nullptr;
    if (writer.begun()) {
      const bool reusable = co_await writer.End();
      Record(request, writer.status(), writer.bytes(), stats);
      if (!reusable || draining.load(std::memory_order_relaxed) || !(full ? full->keep_alive() : head.keep_alive())) break;
      continue;
    }
    Decorate(request, response);
    Record(request, response.status, response.body.size(), stats);

    const bool keep_alive = !response.close_connection && !draining.load(std::memory_order_relaxed) &&
                            (full ? full->keep_alive() : head.keep_alive());
    ec = co_await WriteResponse(connection.stream, response, request.version, method == Method::kHead, keep_alive,
                                config.write_timeout);
    if (ec) break;
    if (!keep_alive) {
      if (response.close_connection) co_await LingeringClose(connection.stream);
      break;
    }
  }
  error_code ignored;
  connection.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  connection.stream.close();
}

Task<Response> Server::Impl::Dispatch(Request& request, const RouteMatch& match) {
  std::size_t ran = 0;
  try {
    for (; ran < middleware.size(); ++ran) {
      if (auto answer = middleware[ran]->OnRequest(request)) co_return std::move(*answer);
    }
    if (match.route == nullptr) {
      if (!match.path_exists) co_return Response::FromError(ErrorCode::kNotFound, "no route for this path");
      if (request.method == Method::kOptions) {
        Response response = Response::NoContent();
        response.AddHeader("Allow", match.allow);
        co_return response;
      }
      Response response = Response::FromError(
          ErrorCode::kMethodNotAllowed, fmt::format("method {} is not allowed here", request.method_name));
      response.AddHeader("Allow", match.allow);
      co_return response;
    }
    co_return co_await match.route->handler(request);
  } catch (const std::exception& error) {
    log::Error("unhandled exception in request", {{"request_id", request.request_id},
                                                  {"route", match.route ? match.route->pattern : "unmatched"},
                                                  {"error", error.what()}});
  }
  co_return Response::FromError(ErrorCode::kInternal,
                                fmt::format("internal error; request id {}", request.request_id));
}

void Server::Impl::Decorate(const Request& request, Response& response) {
  for (auto it = middleware.rbegin(); it != middleware.rend(); ++it) (*it)->OnResponse(request, response);
  response.SetHeader("X-Request-ID", request.request_id);
  response.SetHeader("X-Process-Time", SecondsText(Clock::now() - request.start));
}

void Server::Impl::Record(const Request& request, int status, std::size_t bytes, RouteStats& stats) {
  const double seconds = std::chrono::duration<double>(Clock::now() - request.start).count();
  if (status < 100 || status >= 600) status = 500;
  auto& slot = stats.by_status[static_cast<std::size_t>(status)];
  metrics::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = &requests_total.WithLabels({stats.method, stats.route, std::to_string(status)});
    slot.store(counter, std::memory_order_release);
  }
  counter->Inc();
  stats.duration->Observe(seconds);

  if (config.access_log && log::Enabled(spdlog::level::info)) {
    log::Info("request", {{"request_id", request.request_id},
                          {"method", request.method_name},
                          {"route", stats.route},
                          {"path", request.path},
                          {"status", status},
                          {"duration_ms", std::round(seconds * 1e6) / 1000.0},
                          {"remote_addr", request.client_address},
                          {"bytes", bytes}});
  }
}

Task<void> Server::Impl::WatchShutdown() {
  const auto deadline = Clock::now() + config.shutdown_timeout;
  asio::steady_timer timer(workers.front()->context);
  while (active.load() > 0 && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(20));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
  }
  if (active.load() > 0) log::Warn("shutdown deadline passed", {{"open_connections", active.load()}});
  for (auto& worker : workers) worker->context.stop();
}

Server::Server(ServerConfig config, const Router& router, MiddlewareChain middleware, metrics::Registry& metrics)
    : impl_(std::make_unique<Impl>(std::move(config), router, std::move(middleware), metrics)) {}

Server::~Server() = default;

Expected<void> Server::Listen() {
  error_code ec;
  const auto address = asio::ip::make_address(impl_->config.host, ec);
  if (ec) return MakeError(ErrorCode::kInvalidArgument, fmt::format("HOST '{}' is not an IP address", impl_->config.host));
  std::uint16_t port = impl_->config.port;
  for (auto& worker : impl_->workers) {
    auto& acceptor = worker->acceptor.emplace(worker->context);
    const tcp::endpoint endpoint(address, port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.set_option(ReusePort(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("cannot listen on {}:{}: {}", impl_->config.host, port, ec.message()));
    }
    port = acceptor.local_endpoint().port();  // port 0: the others join the port the first got
  }
  impl_->bound_port = port;
  return {};
}

std::uint16_t Server::port() const { return impl_->bound_port; }
std::size_t Server::io_threads() const { return impl_->workers.size(); }
asio::io_context& Server::main_context() { return impl_->workers.front()->context; }

void Server::Run() {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& worker : impl_->workers) {
    guards.push_back(asio::make_work_guard(worker->context));
    asio::co_spawn(worker->context, impl_->Accept(*worker), asio::detached);
  }
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl_->workers.size(); ++i) {
    threads.emplace_back([this, i] {
      NameThisThread(fmt::format("chatd-io-{}", i));  // the main thread is I/O thread 0
      impl_->workers[i]->context.run();
    });
  }
  impl_->workers.front()->context.run();
  for (auto& thread : threads) thread.join();
}

void Server::Shutdown() {
  if (impl_->draining.exchange(true)) return;
  log::Info("shutting down", {{"open_connections", impl_->active.load()}});
  for (auto& worker : impl_->workers) {
    asio::post(worker->context, [worker = worker.get()] {
      error_code ec;
      if (worker->acceptor) worker->acceptor->close(ec);
      for (Connection* connection : worker->connections) {
        if (connection->idle) connection->stream.socket().close(ec);
        if (connection->websocket != nullptr) connection->websocket->GoingAway();
      }
    });
  }
  asio::co_spawn(impl_->workers.front()->context, impl_->WatchShutdown(), asio::detached);
}

}  // namespace chatd::http
