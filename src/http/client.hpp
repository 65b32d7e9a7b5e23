// The outbound HTTP/1.1 client: what the LLM providers (and the gateway's pass-through)
// use to talk to upstreams. Plain TCP and TLS (OpenSSL: the system CA store plus an
// optional extra CA file, SNI, host-name verification), a keep-alive pool, a deadline on
// every wait, and bodies streamed both ways. No Beast in this header: modules above http
// see plain types.
//
//   auto call = co_await client.Send({.method = Method::kPost, .url = url, .body = json});
//   if (!call) ...;                        // connect / TLS / write / head errors
//   (*call)->status();                     // the head has arrived
//   while (auto piece = co_await (*call)->ReadSome()) { if (!*piece) break; ... }
//
// Timeouts (ClientConfig, overridable per request): `connect` covers DNS, TCP and the TLS
// handshake; `first_byte` runs from the request's end to the complete response head;
// `idle` bounds each body read (and each streamed request-body write); `total` bounds the
// whole exchange. A timeout ends the call with kUpstreamTimeout.
//
// Pool: idle keep-alive connections are kept per io_context (an Asio service of that
// context), keyed by client and origin, so the hot path takes no lock: a connection
// belongs to the I/O thread that opened it. A connection goes back to the pool only once
// its response was read to the end; at most `max_idle_per_origin` wait there, each for at
// most `idle_expiry`, and one idle for a second or more that the peer closed meanwhile is
// dropped at checkout. A request that fails on a reused connection before any response
// byte arrived is retried once on a new one (the server closed the idle connection as we
// wrote; nothing was processed).
//
// Destinations: after DNS resolution (asynchronous), addresses in link-local ranges and
// the cloud metadata endpoints are refused unless AddressPolicy allows them, so a
// misconfigured or malicious URL cannot reach instance credentials. Loopback and private
// ranges are allowed: local Ollama / vLLM servers live there. URLs come from operator
// configuration only, never from API clients.
//
// Threads: a Client is shared by all I/O threads (immutable after Create). A ClientCall
// belongs to the executor that started it: use it, and destroy it, only there. The
// io_context must be run by one thread (chatd's model: one context per I/O thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/asio.hpp"
#include "core/cancel.hpp"
#include "core/expected.hpp"
#include "http/message.hpp"

namespace chatd::http {

struct AddressPolicy {
  /// Allow 169.254.0.0/16, fe80::/10 and the metadata addresses 169.254.169.254,
  /// fd00:ec2::254 and 100.100.100.200 (LLM_ALLOW_LINK_LOCAL).
  bool allow_link_local = false;
};

/// Whether a resolved address may be connected to under `policy`. `address` is an IPv4 or
/// IPv6 literal; IPv4-mapped IPv6 addresses are judged as their IPv4 address. False for
/// something that is not an address.
bool AddressAllowed(std::string_view address, const AddressPolicy& policy);

struct Url {
  bool tls = false;   // https
  std::string host;   // without IPv6 brackets
  std::uint16_t port = 0;
  std::string target;  // path and query, at least "/"

  /// "host" or "host:port" (brackets around IPv6), as the Host header wants it.
  std::string Authority() const;
};

/// Parses an absolute http:// or https:// URL (no user info, no fragment).
/// kInvalidArgument naming what is wrong.
Expected<Url> ParseUrl(std::string_view url);

struct ClientConfig {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds first_byte_timeout{60'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds total_timeout{0};  // 0: no overall deadline
  std::size_t max_header_size = 64 * 1024;
  /// Idle keep-alive connections kept per origin (and I/O thread); beyond them, a call
  /// that ends closes its connection, and the next opens one (LLM_MAX_IDLE_CONNECTIONS).
  /// At least the calls in flight at once, or the pool churns: with 16 and 64 concurrent
  /// gateway calls, a quarter of them opened a connection (bench/gateway, 64 connections).
  std::size_t max_idle_per_origin = 128;
  std::chrono::milliseconds idle_expiry{30'000};
  std::string extra_ca_file;  // PEM; trusted besides the system store (tests, private CAs)
  AddressPolicy address_policy;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ClientRequest {
  Method method = Method::kGet;
  std::string url;
  /// Extra headers. Host, Content-Length, Transfer-Encoding, Connection and
  /// Accept-Encoding are the client's own: given here they are ignored (the body is never
  /// compressed: Accept-Encoding is always identity).
  Headers headers;
  std::string body;
  /// True: `body` is ignored and the body is written with ClientCall::WriteBody (chunked).
  bool stream_body = false;
  /// What the connection reads at once, at least (the default: 512 bytes, kept small for
  /// the many long-lived streams): the expected size of a whole response, so that it
  /// arrives in one read. The pooled connection keeps the larger buffer.
  std::size_t read_size = 0;
  std::optional<std::chrono::milliseconds> connect_timeout;
  std::optional<std::chrono::milliseconds> first_byte_timeout;
  std::optional<std::chrono::milliseconds> idle_timeout;
  std::optional<std::chrono::milliseconds> total_timeout;
  /// Aborts the call from outside, in any phase: before it connects, while it waits for
  /// the head (inside Send) and while the body is read — as ClientCall::Cancel(). Must
  /// outlive the call; same executor.
  CancelSignal* cancel = nullptr;
};

/// One request/response exchange on one connection.
class ClientCall {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~ClientCall() = default;

  /// Writes one piece of a streamed request body (ClientRequest::stream_body), under the
  /// idle timeout. Before ReadHead() only.
  virtual Task<Expected<void>> WriteBody(std::string_view piece) = 0;
  /// Ends the request (the last chunk of a streamed body) and waits for the response
  /// head under the first-byte timeout. Client::Send has already done this.
  virtual Task<Expected<void>> ReadHead() = 0;

  /// The response head; valid after ReadHead() succeeded.
  virtual int status() const = 0;
  /// The first header with this name (case-insensitive); "" when absent.
  virtual std::string_view Header(std::string_view name) const = 0;

  /// The next piece of the body as it arrives (chunked encoding already decoded; at most
  /// what one read of the connection brings), or std::nullopt at its end: a view into the
  /// call's own buffer, valid until the next read or the call's end (no copy per piece: a
  /// streamed answer reads one per token). Each read waits at most the idle timeout, and
  /// not past `not_after` either (a caller's own deadline, e.g. for the next SSE event):
  /// both end the call with kUpstreamTimeout. At most one pending read.
  virtual Task<Expected<std::optional<std::string_view>>> ReadSome(TimePoint not_after = TimePoint::max()) = 0;
  /// The whole (rest of the) body; kUpstreamUnavailable when it is larger than
  /// `max_bytes` (decided from Content-Length before reading, when there is one).
  virtual Task<Expected<std::string>> ReadAll(std::size_t max_bytes) = 0;

  /// Closes the connection at once: a pending operation completes promptly with
  /// kUnavailable "cancelled", and so does every later one. Idempotent; does not suspend.
  virtual void Cancel() = 0;
};

class Client {
 public:
  /// kInvalidArgument when the extra CA file cannot be loaded.
  static Expected<std::unique_ptr<Client>> Create(ClientConfig config);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Connects (or takes a pooled connection), writes the request head and, unless the
  /// body is streamed, the body. Then call ReadHead() (after WriteBody() calls).
  /// Errors: kInvalidArgument (bad URL), kPermissionDenied (address policy),
  /// kUpstreamUnavailable (DNS, connect, TLS, write), kUpstreamTimeout.
  Task<Expected<std::unique_ptr<ClientCall>>> Start(const ClientRequest& request);
  /// Start() and ReadHead() for a request with a whole body; retried once on a new
  /// connection when a reused one turns out closed.
  Task<Expected<std::unique_ptr<ClientCall>>> Send(const ClientRequest& request);

  const ClientConfig& config() const;

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chatd::http
