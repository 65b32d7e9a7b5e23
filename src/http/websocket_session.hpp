// The Beast side of http/websocket.hpp, private to the http module (server.cpp). One
// session per upgraded connection, on the connection's thread; it borrows the
// connection's tcp_stream, which the server closes after the handler returns.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "http/websocket.hpp"

namespace chatd::http {

class WebSocketSession final : public WebSocket, public WebSocketUpgrade {
 public:
  using HttpRequest = boost::beast::http::request<boost::beast::http::empty_body>;

  WebSocketSession(boost::beast::tcp_stream& stream, const HttpRequest& request, const WebSocketConfig& config);

  // WebSocketUpgrade
  Task<WebSocket*> Accept(std::string_view subprotocol) override;
  const std::vector<std::string>& offered_protocols() const override { return offered_; }
  // WebSocket
  Task<Expected<std::string>> Read() override;
  Task<bool> Send(std::string text) override;
  Task<void> Close(CloseCode code, std::string_view reason) override;
  void CloseSoon(CloseCode code, std::string reason) override;

  bool accepted() const { return accepted_; }
  /// Server shutdown: close with 1001. On the connection's thread.
  void GoingAway();
  /// After the handler returned: waits (briefly) for a close still being sent, since it
  /// uses the connection the server is about to close.
  Task<void> Finish();

 private:
  Task<void> SendClose(CloseCode code, std::string reason);  // close_in_flight_ set by the caller

  boost::beast::websocket::stream<boost::beast::tcp_stream&> ws_;
  const HttpRequest& request_;
  const WebSocketConfig& config_;
  std::vector<std::string> offered_;
  boost::beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  asio::steady_timer room_;  // senders waiting for the queue to shrink
  asio::steady_timer closing_;  // Finish() waiting for a close in flight
  bool close_in_flight_ = false;
  bool accepted_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool close_sent_ = false;
};

}  // namespace chatd::http
