// WebSocket for handlers, without Beast: a route added with RouteOptions::websocket gets
// `request.upgrade` on an upgrade request; the handler may refuse with an ordinary
// response (401, 426, ...) or Accept() and then talk over the socket until it returns,
// after which the server closes the connection.
//
// Keep-alive: the server pings a quiet peer and closes one that stops answering
// (WEBSOCKET_IDLE_TIMEOUT); messages are bounded (WEBSOCKET_MAX_MESSAGE, close 1009).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/expected.hpp"

namespace chatd::http {

struct WebSocketConfig {
  std::size_t max_message = 64 * 1024;              // WEBSOCKET_MAX_MESSAGE
  std::chrono::milliseconds idle_timeout{60'000};  // WEBSOCKET_IDLE_TIMEOUT; a ping goes out at half of it
  std::chrono::milliseconds handshake_timeout{10'000};
  std::size_t max_queued = 1024 * 1024;  // bytes a slow reader may have waiting before senders wait
};

/// Close codes of RFC 6455 §7.4.1 that handlers use.
enum class CloseCode : std::uint16_t {
  kNormal = 1000,
  kGoingAway = 1001,  // the server is shutting down
  kUnsupportedData = 1003,
  kPolicyViolation = 1008,  // e.g. not authenticated
  kTooBig = 1009,
  kInternalError = 1011,
};

class WebSocket {
 public:
  virtual ~WebSocket() = default;
  /// The next text message. Errors: kPayloadTooLarge (over the limit; the socket is
  /// closed with 1009), kInvalidArgument (a binary message; closed with 1003),
  /// kUnavailable (closed by either side, timed out, or broken). At most one Read() at a
  /// time.
  virtual Task<Expected<std::string>> Read() = 0;
  /// Sends a text message. Any number of coroutines of the connection's thread may send
  /// at once: messages are queued and written in order, and a sender waits while much is
  /// queued (a slow reader slows its producers). False once the socket is closed.
  virtual Task<bool> Send(std::string text) = 0;
  /// Sends a close frame (once); a pending Read() then ends.
  virtual Task<void> Close(CloseCode code, std::string_view reason) = 0;
  /// The same without waiting, from plain callbacks (a timer, a revocation posted to the
  /// connection's thread). The close completes before the server releases the socket.
  virtual void CloseSoon(CloseCode code, std::string reason) = 0;
};

class WebSocketUpgrade {
 public:
  virtual ~WebSocketUpgrade() = default;
  /// Completes the handshake (101 Switching Protocols), selecting `subprotocol` when not
  /// empty (it must be one the client offered). Null when the handshake failed; the
  /// handler then just returns.
  virtual Task<WebSocket*> Accept(std::string_view subprotocol) = 0;
  /// The subprotocols the client offered (Sec-WebSocket-Protocol), in order.
  virtual const std::vector<std::string>& offered_protocols() const = 0;
};

}  // namespace chatd::http
