#include "http/client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include "http/send_now.hpp"

namespace chatd::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// What ReadAll makes room for first: when the body's length is not announced, and at most
// when it is (an upstream's Content-Length is not memory it has sent yet).
constexpr std::size_t kFirstReadAllRoom = 4 * 1024;
constexpr std::size_t kMaxFirstReadAllRoom = 1024 * 1024;

std::string_view Sv(beast::string_view view) { return {view.data(), view.size()}; }

bool Forbidden(const asio::ip::address& address) {
  if (address.is_v6()) {
    const asio::ip::address_v6 v6 = address.to_v6();
    if (v6.is_v4_mapped()) return Forbidden(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    static const asio::ip::address_v6 kAwsMetadata = asio::ip::make_address_v6("fd00:ec2::254");
    return v6.is_link_local() || v6 == kAwsMetadata;
  }
  const std::uint32_t v4 = address.to_v4().to_uint();
  constexpr std::uint32_t kLinkLocal = 0xA9FE0000;         // 169.254.0.0/16 (AWS, GCP, Azure metadata inside)
  constexpr std::uint32_t kAlibabaMetadata = 0x646464C8;  // 100.100.100.200
  return (v4 & 0xFFFF0000) == kLinkLocal || v4 == kAlibabaMetadata;
}

bool IsIpLiteral(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Headers the client writes itself; a caller's copy is dropped (also hop-by-hop ones a
// pass-through proxy must not forward).
bool ReservedHeader(std::string_view name) {
  for (std::string_view reserved : {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
                                    "accept-encoding", "te", "upgrade", "proxy-connection", "trailer"}) {
    if (EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

Unexpected Cancelled() { return MakeError(ErrorCode::kUnavailable, "cancelled"); }

// One connection to one origin. Beast's composed operations see it as a stream whatever
// its transport: async_read_some/async_write_some go to the TLS or the plain stream.
struct Connection {
  using executor_type = asio::any_io_executor;

  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  std::string key;  // the pool's: client and origin
  Clock::time_point idle_since;
  bool reused = false;

  beast::tcp_stream& Transport() { return tls ? tls->next_layer() : *plain; }
  executor_type get_executor() { return Transport().get_executor(); }

  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          if (tls) {
            tls->async_read_some(b, std::move(handler));
          } else {
            plain->async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) {
          if (tls) {
            tls->async_write_some(b, std::move(handler));
          } else {
            plain->async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  void Arm(Clock::time_point deadline) {
    if (deadline == Clock::time_point::max()) {
      Transport().expires_never();
    } else {
      Transport().expires_at(deadline);
    }
  }

  void Close() {
    error_code ec;
    Transport().socket().close(ec);
  }

  // An idle connection that became readable was closed by the peer (or sent something
  // unsolicited): either way it cannot carry a request. poll() with a zero timeout does
  // not block.
  bool StillOpen() {
    pollfd fd{Transport().socket().native_handle(), POLLIN, 0};
    return ::poll(&fd, 1, 0) == 0;
  }
};

// A connection idle for less than this is taken without asking the kernel whether the
// peer closed it (a poll() per request): servers close idle connections after seconds,
// and one that did meanwhile fails before any response byte, which Send() retries on a
// new connection.
constexpr milliseconds kTrustIdleFor{1000};

// The idle connections of one io_context, an Asio service of it: created on first use,
// destroyed with the context, touched only by the context's one thread.
class Pool final : public asio::execution_context::service {
 public:
  static asio::execution_context::id id;
  explicit Pool(asio::execution_context& context) : asio::execution_context::service(context) {}

  std::unique_ptr<Connection> Take(const std::string& key, milliseconds expiry) {
    const auto found = idle_.find(key);
    if (found == idle_.end()) return nullptr;
    auto& list = found->second;
    const auto now = Clock::now();
    while (!list.empty()) {
      std::unique_ptr<Connection> connection = std::move(list.back());  // the most recent: least likely closed
      list.pop_back();
      const auto idle = now - connection->idle_since;
      if (idle < expiry && (idle < kTrustIdleFor || connection->StillOpen())) {
        connection->reused = true;
        return connection;
      }
      connection->Close();
    }
    return nullptr;
  }

  void Put(std::unique_ptr<Connection> connection, std::size_t max_idle, milliseconds expiry) {
    const auto now = Clock::now();
    Sweep(now, expiry);
    if (max_idle == 0) return connection->Close();
    connection->idle_since = now;
    connection->Arm(Clock::time_point::max());
    auto& list = idle_[connection->key];
    while (list.size() >= max_idle) {  // make room: the oldest goes
      list.front()->Close();
      list.pop_front();
    }
    list.push_back(std::move(connection));
  }

 private:
  void shutdown() override { idle_.clear(); }

  // Closes what has been idle too long, for every origin: an origin no longer called
  // must not keep its sockets open. The oldest sit at the front of each list.
  void Sweep(Clock::time_point now, milliseconds expiry) {
    for (auto it = idle_.begin(); it != idle_.end();) {
      auto& list = it->second;
      while (!list.empty() && now - list.front()->idle_since >= expiry) {
        list.front()->Close();
        list.pop_front();
      }
      it = list.empty() ? idle_.erase(it) : std::next(it);
    }
  }

  std::unordered_map<std::string, std::deque<std::unique_ptr<Connection>>> idle_;
};

asio::execution_context::id Pool::id;

Clock::time_point After(Clock::time_point from, milliseconds timeout) {
  if (timeout.count() <= 0) return Clock::time_point::max();
  return from + timeout;
}

}  // namespace

bool AddressAllowed(std::string_view address, const AddressPolicy& policy) {
  error_code ec;
  const auto parsed = asio::ip::make_address(std::string(address), ec);
  if (ec) return false;
  return policy.allow_link_local || !Forbidden(parsed);
}

std::string Url::Authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string name = v6 ? "[" + host + "]" : host;
  if (port == (tls ? 443 : 80)) return name;
  return (name += ':') += std::to_string(port);
}

Expected<Url> ParseUrl(std::string_view text) {
  Url url;
  std::string_view rest;
  if (text.substr(0, 8) == "https://") {
    url.tls = true;
    rest = text.substr(8);
  } else if (text.substr(0, 7) == "http://") {
    rest = text.substr(7);
  } else {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not an http:// or https:// URL", text));
  }
  const std::size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string_view target = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (const std::size_t hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  if (authority.find('@') != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': credentials in a URL are not supported", text));
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': bad IPv6 host", text));
    url.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}': bad host", text));
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (url.host.empty()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' has no host", text));
  url.port = url.tls ? 443 : 80;
  if (!port.empty()) {
    unsigned value = 0;
    for (const char c : port) {
      if (c < '0' || c > '9' || value > 65535) {
        return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' has an invalid port", text));
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' has an invalid port", text));
    url.port = static_cast<std::uint16_t>(value);
  }
  url.target = target.empty() || target.front() != '/' ? "/" + std::string(target) : std::string(target);
  return url;
}

struct Client::Impl {
  explicit Impl(ClientConfig c) : config(std::move(c)), tls_context(ssl::context::tls_client) {}

  // Start() with the knowledge Send() needs for its one retry: whether the failure came
  // from a reused connection before anything was received.
  Task<Expected<std::unique_ptr<ClientCall>>> Open(const ClientRequest& request, bool may_reuse, bool& stale);
  Task<Expected<std::unique_ptr<Connection>>> Connect(const Url& url, Clock::time_point deadline, milliseconds timeout);

  // What Open derives from a request's URL. Kept per distinct URL: they come from the
  // operator's configuration (a handful), and parsing one, its origin and its pool key
  // cost ~1 000 instructions and three allocations on every upstream request.
  struct Endpoint {
    Url url;
    std::string origin;    // url.Authority()
    std::string pool_key;  // this client's connections to the origin
  };
  Expected<std::shared_ptr<const Endpoint>> EndpointOf(std::string_view url);

  ClientConfig config;
  ssl::context tls_context;
  std::string id = std::to_string(next_id.fetch_add(1));  // keeps pools of two clients apart
  static inline std::atomic<std::uint64_t> next_id{0};

  static constexpr std::size_t kMaxEndpoints = 64;  // beyond: parsed each time, not kept
  std::mutex endpoints_mutex;
  std::vector<std::pair<std::string, std::shared_ptr<const Endpoint>>> endpoints;
};

Expected<std::shared_ptr<const Client::Impl::Endpoint>> Client::Impl::EndpointOf(std::string_view text) {
  {
    std::lock_guard lock(endpoints_mutex);
    for (const auto& [known, endpoint] : endpoints) {
      if (known == text) return endpoint;
    }
  }
  auto url = ParseUrl(text);
  if (!url) return Unexpected{std::move(url).error()};
  auto endpoint = std::make_shared<Endpoint>();
  endpoint->origin = url->Authority();
  endpoint->pool_key = id;
  (((endpoint->pool_key += url->tls ? "|https|" : "|http|") += url->host) += '|') += std::to_string(url->port);
  endpoint->url = std::move(*url);
  std::lock_guard lock(endpoints_mutex);
  if (endpoints.size() < kMaxEndpoints) endpoints.emplace_back(std::string(text), endpoint);
  return std::shared_ptr<const Endpoint>(std::move(endpoint));
}

namespace {

class Call final : public ClientCall {
 public:
  Call(Client::Impl& client, std::unique_ptr<Connection> connection, const ClientRequest& request, std::string origin,
       Clock::time_point started)
      : client_(client),
        connection_(std::move(connection)),
        origin_(std::move(origin)),
        head_request_(request.method == Method::kHead),
        stream_body_(request.stream_body),
        read_size_(request.read_size),
        first_byte_timeout_(request.first_byte_timeout.value_or(client.config.first_byte_timeout)),
        idle_timeout_(request.idle_timeout.value_or(client.config.idle_timeout)),
        total_timeout_(request.total_timeout.value_or(client.config.total_timeout)),
        total_deadline_(After(started, total_timeout_)),
        cancel_(request.cancel) {
    if (cancel_ != nullptr) cancel_token_ = cancel_->OnCancel([this] { Cancel(); });
  }

  ~Call() override {
    if (cancel_ != nullptr) cancel_->Clear(cancel_token_);
    StopWatching();
    if (connection_) connection_->Close();
  }

  bool reused() const { return connection_ != nullptr && connection_->reused; }
  // The peer closed before sending a byte: what a keep-alive connection closed while idle
  // looks like.
  bool stale() const { return stale_; }

  // The request line and header are written by hand (as the server writes its responses:
  // Beast's serializer and fields container cost more than the bytes), with the body in
  // the same gathered write.
  Task<Expected<void>> WriteRequest(const ClientRequest& request, const Url& url) {
    std::string head;
    head.reserve(256 + url.target.size());
    head += MethodName(request.method);
    head += ' ';
    head += url.target;
    head += " HTTP/1.1\r\nHost: ";
    head += origin_;  // url.Authority(), made once per call
    head += "\r\nUser-Agent: chatd\r\nAccept-Encoding: identity\r\n";
    for (const auto& [name, value] : request.headers) {
      if (ReservedHeader(name)) continue;
      head += name;
      head += ": ";
      head += value;
      head += "\r\n";
    }
    const bool has_body = !request.body.empty() || request.method == Method::kPost ||
                          request.method == Method::kPut || request.method == Method::kPatch;
    if (request.stream_body) {
      head += "Transfer-Encoding: chunked\r\n";
    } else if (has_body) {
      head += "Content-Length: ";
      head += std::to_string(request.body.size());
      head += "\r\n";
    }
    head += "\r\n";
    const std::array<asio::const_buffer, 2> buffers{
        asio::buffer(head), request.stream_body ? asio::const_buffer() : asio::buffer(request.body)};
    // What the socket takes at once goes out with one send (as the server writes; TLS
    // goes through its stream).
    error_code ec;
    const std::size_t sent = connection_->plain ? SendNow(connection_->plain->socket(), buffers, ec) : 0;
    if (!ec && sent < asio::buffer_size(buffers)) {
      beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(buffers);
      rest.consume(sent);
      Arm(After(Clock::now(), idle_timeout_));
      co_await asio::async_write(*connection_, rest, asio::redirect_error(kUseAwaitable, ec));
    }
    if (ec) co_return Fail(ec, "writing the request to", "no progress writing to", idle_timeout_);
    co_return Expected<void>{};
  }

  Task<Expected<void>> WriteBody(std::string_view piece) override {
    if (auto broken = Check(); !broken) co_return broken;
    if (!stream_body_ || parser_) throw std::logic_error("ClientCall::WriteBody: no streamed request body open");
    if (piece.empty()) co_return Expected<void>{};  // an empty chunk would end the body
    error_code ec;
    Arm(After(Clock::now(), idle_timeout_));
    co_await asio::async_write(*connection_, bhttp::make_chunk(asio::const_buffer(piece.data(), piece.size())),
                               asio::redirect_error(kUseAwaitable, ec));
    if (ec) co_return Fail(ec, "writing the request body to", "no progress writing to", idle_timeout_);
    co_return Expected<void>{};
  }

  Task<Expected<void>> ReadHead() override {
    if (auto broken = Check(); !broken) co_return broken;
    if (parser_) throw std::logic_error("ClientCall::ReadHead called twice");
    error_code ec;
    if (stream_body_) {
      Arm(After(Clock::now(), idle_timeout_));
      co_await asio::async_write(*connection_, bhttp::make_chunk_last(), asio::redirect_error(kUseAwaitable, ec));
      if (ec) co_return Fail(ec, "writing the request body to", "no progress writing to", idle_timeout_);
    }
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(client_.config.max_header_size));
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // ReadAll and callers bound it
    parser_->skip(head_request_);
    // Beast reads as much as the buffer's capacity (at least 512 bytes): a connection kept
    // small for streams would take a whole answer in two reads.
    if (connection_->buffer.capacity() < read_size_) connection_->buffer.reserve(read_size_);
    Arm(After(Clock::now(), first_byte_timeout_));
    co_await bhttp::async_read_header(*connection_, connection_->buffer, *parser_,
                                      asio::redirect_error(kUseAwaitable, ec));
    if (ec == bhttp::error::header_limit) {
      co_return Fail(MakeError(ErrorCode::kUpstreamUnavailable,
                               fmt::format("the response header from {} is larger than {} bytes", origin_,
                                           client_.config.max_header_size)));
    }
    if (ec) {
      stale_ = ec == bhttp::error::end_of_stream || ec == asio::error::connection_reset ||
               ec == asio::error::eof || ec == asio::error::broken_pipe;
      co_return Fail(ec, "reading the response head from", "no response head from",
                     first_byte_timeout_);
    }
    status_ = static_cast<int>(parser_->get().result_int());
    if (parser_->is_done()) Release();
    co_return Expected<void>{};
  }

  int status() const override { return status_; }
  // From the parser's own fields, which live as long as the call: no copy per header.
  std::string_view Header(std::string_view name) const override {
    if (!parser_) return {};
    const auto& head = parser_->get();
    const auto found = head.find(beast::string_view(name.data(), name.size()));
    return found == head.end() ? std::string_view() : Sv(found->value());
  }

  // Not a coroutine: it hands back ReadInto's task, without a frame of its own per piece.
  Task<Expected<std::optional<std::string_view>>> ReadSome(TimePoint not_after) override {
    if (!piece_ && connection_) {
      // As large as what one read of the connection brings (Beast reads up to its buffer's
      // capacity, at least 512 bytes): the thousands of open streams each hold one, so a
      // stream's connection keeps it at 512 bytes (bench/streams: 2 KiB here was 5 % of
      // an open chat stream's memory), and a pooled one grown for whole answers gets more.
      piece_size_ = std::max<std::size_t>(512, connection_->buffer.capacity());
      piece_ = std::make_unique_for_overwrite<char[]>(piece_size_);
    }
    return ReadInto(piece_.get(), piece_size_, not_after);
  }

  Task<Expected<std::string>> ReadAll(std::size_t max_bytes) override {
    if (!parser_) throw std::logic_error("ClientCall::ReadAll before ReadHead");
    const auto too_large = [&] {
      return Fail(MakeError(ErrorCode::kUpstreamUnavailable,
                            fmt::format("the response body from {} is larger than {} bytes", origin_, max_bytes)));
    };
    const auto length = parser_->content_length();
    if (length && *length > max_bytes) co_return too_large();
    // Straight into the answer, not through a piece: a body of announced length (up to
    // 1 MiB) takes one allocation and no copy, and one byte to spare sees its end without
    // growing.
    const std::size_t limit = std::min(max_bytes, std::numeric_limits<std::size_t>::max() - 1) + 1;
    const std::size_t first_room =
        length ? std::min<std::size_t>(static_cast<std::size_t>(*length) + 1, kMaxFirstReadAllRoom) : kFirstReadAllRoom;
    std::string body;
    body.resize(std::min(first_room, limit));
    std::size_t filled = 0;
    while (true) {
      if (filled == body.size()) body.resize(std::min(limit, 2 * body.size()));
      auto piece = co_await ReadInto(body.data() + filled, body.size() - filled, TimePoint::max());
      if (!piece) co_return Unexpected{std::move(piece).error()};
      if (!*piece) break;
      filled += (*piece)->size();
      if (filled > max_bytes) co_return too_large();
    }
    body.resize(filled);
    co_return body;
  }

  void Cancel() override {
    if (cancelled_) return;
    cancelled_ = true;
    if (connection_) connection_->Close();
  }

 private:
  // Reads the body into [data, data + size): a view of what arrived, or std::nullopt at
  // the body's end. `size` > 0 unless the body has ended.
  Task<Expected<std::optional<std::string_view>>> ReadInto(char* data, std::size_t size, TimePoint not_after) {
    if (auto broken = Check(); !broken) co_return Unexpected{broken.error()};
    if (!parser_) throw std::logic_error("ClientCall::ReadSome before ReadHead");
    while (!done_) {
      auto& body = parser_->get().body();
      body.data = data;
      body.size = size;
      const Clock::time_point idle_deadline = After(Clock::now(), idle_timeout_);
      WatchRead(std::min({idle_deadline, not_after, total_deadline_}));
      error_code ec;
      co_await bhttp::async_read_some(*connection_, connection_->buffer, *parser_,
                                      asio::redirect_error(kUseAwaitable, ec));
      watch_->deadline = Clock::time_point::max();
      if (watch_->expired && !cancelled_) ec = beast::error::timeout;
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) {
        if (not_after < idle_deadline && Clock::now() >= not_after && !cancelled_) {
          co_return Fail(MakeError(ErrorCode::kUpstreamTimeout, fmt::format("no data from {} in time", origin_)));
        }
        co_return Fail(ec, "reading the response body from", "no data from", idle_timeout_);
      }
      const std::size_t n = size - parser_->get().body().size;
      if (parser_->is_done()) Release();
      if (n > 0) co_return std::optional<std::string_view>(std::in_place, data, n);
    }
    co_return std::optional<std::string_view>{};
  }

  Expected<void> Check() const {
    if (cancelled_) return Cancelled();
    if (failure_) return Unexpected{*failure_};
    return {};
  }

  // The deadline of the next operation: its own, and never past the overall one.
  void Arm(Clock::time_point deadline) { connection_->Arm(std::min(deadline, total_deadline_)); }

  // Body reads are bounded by a watchdog rather than by Beast's timer, which arms a timer
  // around every operation and cancels it after (a heap insert, a removal and a posted
  // completion each time: per token of a streamed answer). The watchdog's timer is armed
  // when a read starts and none is pending; while one is, a read only moves `deadline`,
  // and a timer that fires early sleeps again until then. Shared with the timer's
  // handler, which may run after the call is gone.
  struct ReadWatch : std::enable_shared_from_this<ReadWatch> {
    explicit ReadWatch(const asio::any_io_executor& executor) : timer(executor) {}
    asio::steady_timer timer;
    Clock::time_point deadline = Clock::time_point::max();  // the pending read's; max: no read
    Clock::time_point armed = Clock::time_point::max();     // the pending wait's expiry; max: none
    Connection* connection = nullptr;                        // closed at the deadline; null: let go
    bool expired = false;

    void Watch(Connection& watched, Clock::time_point until) {
      connection = &watched;
      deadline = until;
      if (armed <= until) return;  // a wait that fires no later is pending
      armed = until;
      timer.expires_at(until);  // a later wait, if any, completes with operation_aborted
      timer.async_wait([self = shared_from_this()](error_code ec) { self->Fired(ec); });
    }

    void Fired(error_code ec) {
      if (ec == asio::error::operation_aborted) return;  // replaced by an earlier wait, or stopped
      armed = Clock::time_point::max();
      if (connection == nullptr || deadline == Clock::time_point::max()) return;
      if (Clock::now() < deadline) return Watch(*connection, deadline);
      expired = true;
      connection->Close();  // the pending read fails; ReadSome reports the timeout
    }
  };

  void WatchRead(Clock::time_point deadline) {
    if (!watch_) {
      watch_ = std::make_shared<ReadWatch>(connection_->get_executor());
      connection_->Arm(Clock::time_point::max());  // Beast's timer off for the body
    }
    watch_->Watch(*connection_, deadline);
  }

  void StopWatching() {
    if (!watch_) return;
    watch_->connection = nullptr;
    watch_->timer.cancel();
  }

  // The response has been read to its end: the connection may serve another request.
  void Release() {
    done_ = true;
    StopWatching();
    if (!connection_) return;
    if (parser_->keep_alive() && !cancelled_ && connection_->buffer.size() == 0) {
      asio::use_service<Pool>(asio::query(connection_->get_executor(), asio::execution::context))
          .Put(std::move(connection_), client_.config.max_idle_per_origin, client_.config.idle_expiry);
    } else {
      connection_->Close();
      connection_.reset();
    }
  }

  Unexpected Fail(Unexpected error) {
    if (connection_) connection_->Close();
    if (cancelled_) return Cancelled();
    failure_ = error.error;
    return error;
  }

  // An I/O error: cancelled, a timeout (the overall one, or the operation's own:
  // "<waiting> <origin> within <timeout> ms"), or a failure while `doing` something.
  Unexpected Fail(error_code ec, std::string_view doing, std::string_view waiting, milliseconds timeout) {
    if (cancelled_) return Fail(Cancelled());
    if (ec == beast::error::timeout) {
      if (Clock::now() >= total_deadline_) {
        return Fail(MakeError(ErrorCode::kUpstreamTimeout,
                              fmt::format("the request to {} took longer than {} ms", origin_, total_timeout_.count())));
      }
      return Fail(MakeError(ErrorCode::kUpstreamTimeout,
                            fmt::format("{} {} within {} ms", waiting, origin_, timeout.count())));
    }
    return Fail(MakeError(ErrorCode::kUpstreamUnavailable, fmt::format("{} {}: {}", doing, origin_, ec.message())));
  }

  Client::Impl& client_;
  std::unique_ptr<Connection> connection_;
  std::string origin_;
  bool head_request_;
  bool stream_body_;
  std::size_t read_size_;
  milliseconds first_byte_timeout_;
  milliseconds idle_timeout_;
  milliseconds total_timeout_;
  Clock::time_point total_deadline_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  int status_ = 0;
  std::unique_ptr<char[]> piece_;  // ReadSome's, from its first call
  std::size_t piece_size_ = 0;
  std::shared_ptr<ReadWatch> watch_;  // from the first body read on
  bool done_ = false;
  bool cancelled_ = false;
  bool stale_ = false;
  std::optional<Error> failure_;
  CancelSignal* cancel_ = nullptr;
  CancelSignal::Token cancel_token_ = 0;
};

// DNS with a deadline. Asio's resolver runs getaddrinfo on a thread of its own and cannot
// interrupt it, so the wait races a timer instead of waiting for the lookup to give up;
// the shared state outlives whichever loses.
struct Resolution {
  explicit Resolution(const asio::any_io_executor& executor) : resolver(executor), timer(executor) {}
  tcp::resolver resolver;
  asio::steady_timer timer;
  tcp::resolver::results_type results;
  error_code ec;
  bool done = false;
};

}  // namespace

Task<Expected<std::unique_ptr<Connection>>> Client::Impl::Connect(const Url& url, Clock::time_point deadline,
                                                                  milliseconds timeout) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  const std::string origin = url.Authority();
  auto resolution = std::make_shared<Resolution>(executor);
  resolution->resolver.async_resolve(url.host, std::to_string(url.port),
                                     [resolution](const error_code& ec, tcp::resolver::results_type results) {
                                       resolution->ec = ec;
                                       resolution->results = std::move(results);
                                       resolution->done = true;
                                       resolution->timer.cancel();
                                     });
  resolution->timer.expires_at(deadline);
  error_code ec;
  co_await resolution->timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
  if (!resolution->done) {
    resolution->resolver.cancel();
    co_return MakeError(ErrorCode::kUpstreamTimeout,
                        fmt::format("resolving {} took longer than {} ms", url.host, timeout.count()));
  }
  if (resolution->ec) {
    co_return MakeError(ErrorCode::kUpstreamUnavailable,
                        fmt::format("cannot resolve {}: {}", url.host, resolution->ec.message()));
  }
  std::vector<tcp::endpoint> endpoints;
  std::string refused;
  for (const auto& entry : resolution->results) {
    if (config.address_policy.allow_link_local || !Forbidden(entry.endpoint().address())) {
      endpoints.push_back(entry.endpoint());
    } else {
      refused = entry.endpoint().address().to_string();
    }
  }
  if (endpoints.empty()) {
    co_return MakeError(ErrorCode::kPermissionDenied,
                        fmt::format("refused to connect to {}: it resolves to {}, a link-local or cloud metadata "
                                    "address (allowed only when link-local destinations are enabled)",
                                    url.host, refused));
  }

  beast::tcp_stream stream(executor);
  if (deadline != Clock::time_point::max()) stream.expires_at(deadline);
  co_await stream.async_connect(endpoints, asio::redirect_error(kUseAwaitable, ec));
  if (ec == beast::error::timeout) {
    co_return MakeError(ErrorCode::kUpstreamTimeout,
                        fmt::format("connecting to {} took longer than {} ms", origin, timeout.count()));
  }
  if (ec) co_return MakeError(ErrorCode::kUpstreamUnavailable, fmt::format("cannot connect to {}: {}", origin, ec.message()));
  stream.socket().set_option(tcp::no_delay(true), ec);

  auto connection = std::make_unique<Connection>();
  if (!url.tls) {
    // A plain connection's request goes out with a non-blocking send first (WriteRequest).
    stream.socket().non_blocking(true, ec);
    connection->plain.emplace(std::move(stream));
    co_return connection;
  }
  auto& tls = connection->tls.emplace(std::move(stream), tls_context);
  SSL* native = tls.native_handle();
  // SNI for names (not for IP literals, RFC 6066), and the certificate must name the host.
  if (!IsIpLiteral(url.host)) SSL_set_tlsext_host_name(native, url.host.c_str());
  const int named = IsIpLiteral(url.host) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), url.host.c_str())
                                          : SSL_set1_host(native, url.host.c_str());
  if (named != 1) co_return MakeError(ErrorCode::kInternal, fmt::format("cannot set up TLS verification for {}", origin));
  connection->Arm(deadline);
  co_await tls.async_handshake(ssl::stream_base::client, asio::redirect_error(kUseAwaitable, ec));
  if (ec == beast::error::timeout) {
    co_return MakeError(ErrorCode::kUpstreamTimeout,
                        fmt::format("the TLS handshake with {} took longer than {} ms", origin, timeout.count()));
  }
  if (ec) {
    co_return MakeError(ErrorCode::kUpstreamUnavailable, fmt::format("TLS handshake with {} failed: {}", origin, ec.message()));
  }
  co_return connection;
}

Task<Expected<std::unique_ptr<ClientCall>>> Client::Impl::Open(const ClientRequest& request, bool may_reuse,
                                                               bool& stale) {
  stale = false;
  if (request.cancel != nullptr && request.cancel->cancelled()) co_return Cancelled();
  auto found = EndpointOf(request.url);
  if (!found) co_return Unexpected{std::move(found).error()};
  const std::shared_ptr<const Endpoint> endpoint = std::move(*found);
  const Url* const url = &endpoint->url;
  const std::string& origin = endpoint->origin;
  const std::string& key = endpoint->pool_key;
  const auto started = Clock::now();

  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  Pool& pool = asio::use_service<Pool>(asio::query(executor, asio::execution::context));
  std::unique_ptr<Connection> connection;
  if (may_reuse) connection = pool.Take(key, config.idle_expiry);
  if (!connection) {
    const milliseconds total = request.total_timeout.value_or(config.total_timeout);
    const milliseconds connect = request.connect_timeout.value_or(config.connect_timeout);
    const Clock::time_point deadline = std::min(After(started, connect), After(started, total));
    auto connected = co_await Connect(*url, deadline, connect);
    if (!connected) co_return Unexpected{std::move(connected).error()};
    connection = std::move(*connected);
    connection->key = key;
    if (request.cancel != nullptr && request.cancel->cancelled()) co_return Cancelled();  // while connecting
  }
  auto call = std::make_unique<Call>(*this, std::move(connection), request, origin, started);
  auto written = co_await call->WriteRequest(request, *url);
  if (!written) {
    stale = call->reused();
    co_return Unexpected{std::move(written).error()};
  }
  co_return std::unique_ptr<ClientCall>(std::move(call));
}

Expected<std::unique_ptr<Client>> Client::Create(ClientConfig config) {
  auto impl = std::make_unique<Impl>(std::move(config));
  error_code ec;
  impl->tls_context.set_default_verify_paths(ec);
  if (ec) return MakeError(ErrorCode::kInternal, fmt::format("cannot load the system CA store: {}", ec.message()));
  if (!impl->config.extra_ca_file.empty()) {
    impl->tls_context.load_verify_file(impl->config.extra_ca_file, ec);
    if (ec) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("cannot load the CA file {}: {}", impl->config.extra_ca_file, ec.message()));
    }
  }
  impl->tls_context.set_verify_mode(ssl::verify_peer);
  SSL_CTX_set_min_proto_version(impl->tls_context.native_handle(), TLS1_2_VERSION);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const ClientConfig& Client::config() const { return impl_->config; }

Task<Expected<std::unique_ptr<ClientCall>>> Client::Start(const ClientRequest& request) {
  bool stale = false;
  co_return co_await impl_->Open(request, true, stale);
}

Task<Expected<std::unique_ptr<ClientCall>>> Client::Send(const ClientRequest& request) {
  if (request.stream_body) throw std::logic_error("Client::Send: a streamed body needs Start()");
  for (int attempt = 0;; ++attempt) {
    const bool may_reuse = attempt == 0;
    bool stale = false;
    auto call = co_await impl_->Open(request, may_reuse, stale);
    if (!call) {
      if (stale && attempt == 0) continue;
      co_return call;
    }
    auto& opened = static_cast<Call&>(**call);
    auto head = co_await opened.ReadHead();
    if (!head) {
      if (opened.reused() && opened.stale() && attempt == 0) continue;
      co_return Unexpected{std::move(head).error()};
    }
    co_return call;
  }
}

}  // namespace chatd::http
