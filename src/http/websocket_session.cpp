#include "http/websocket_session.hpp"

#include <boost/asio/redirect_error.hpp>

#include "core/log.hpp"

namespace chatd::http {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using boost::system::error_code;

namespace {

std::vector<std::string> SplitProtocols(std::string_view header) {
  std::vector<std::string> protocols;
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) protocols.emplace_back(item);
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return protocols;
}

}  // namespace

WebSocketSession::WebSocketSession(beast::tcp_stream& stream, const HttpRequest& request,
                                   const WebSocketConfig& config)
    : ws_(stream), request_(request), config_(config), room_(stream.get_executor()),
      closing_(stream.get_executor()) {
  auto [first, last] = request.equal_range(beast::http::field::sec_websocket_protocol);
  for (auto field = first; field != last; ++field) {
    auto more = SplitProtocols(std::string_view(field->value().data(), field->value().size()));
    offered_.insert(offered_.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
}

Task<WebSocket*> WebSocketSession::Accept(std::string_view subprotocol) {
  if (accepted_) co_return this;
  // The websocket stream keeps its own timers (handshake, idle with pings); the tcp
  // stream's expiry would cut a healthy quiet socket.
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = config_.handshake_timeout;
  timeouts.idle_timeout = config_.idle_timeout;
  timeouts.keep_alive_pings = true;
  ws_.set_option(timeouts);
  ws_.read_message_max(config_.max_message);
  ws_.auto_fragment(false);
  std::string selected(subprotocol);
  ws_.set_option(websocket::stream_base::decorator([selected](websocket::response_type& response) {
    response.set(beast::http::field::server, "chatd");
    if (!selected.empty()) response.set(beast::http::field::sec_websocket_protocol, selected);
  }));
  error_code ec;
  co_await ws_.async_accept(request_, asio::redirect_error(kUseAwaitable, ec));
  if (ec) {
    closed_ = true;
    co_return nullptr;
  }
  accepted_ = true;
  co_return this;
}

Task<Expected<std::string>> WebSocketSession::Read() {
  if (closed_) co_return MakeError(ErrorCode::kUnavailable, "the socket is closed");
  buffer_.clear();
  error_code ec;
  co_await ws_.async_read(buffer_, asio::redirect_error(kUseAwaitable, ec));
  if (ec == websocket::error::message_too_big) {
    // Beast has already failed the connection with 1009.
    closed_ = true;
    co_return MakeError(ErrorCode::kPayloadTooLarge, "message is larger than the limit");
  }
  if (ec) {
    closed_ = true;
    room_.cancel();
    co_return MakeError(ErrorCode::kUnavailable, "the socket is closed");
  }
  if (!ws_.got_text()) {
    co_await Close(CloseCode::kUnsupportedData, "only text messages are accepted");
    co_return MakeError(ErrorCode::kInvalidArgument, "only text messages are accepted");
  }
  co_return beast::buffers_to_string(buffer_.data());
}

Task<bool> WebSocketSession::Send(std::string text) {
  if (closed_) co_return false;
  queued_bytes_ += text.size();
  queue_.push_back(std::move(text));
  if (writing_) {
    // Another sender is draining the queue; wait for room when it is long.
    while (!closed_ && queued_bytes_ > config_.max_queued) {
      room_.expires_at(asio::steady_timer::time_point::max());
      error_code ec;
      co_await room_.async_wait(asio::redirect_error(kUseAwaitable, ec));
    }
    co_return !closed_;
  }
  writing_ = true;
  while (!queue_.empty() && !closed_) {
    const std::string message = std::move(queue_.front());
    queue_.pop_front();
    ws_.text(true);
    error_code ec;
    co_await ws_.async_write(asio::buffer(message), asio::redirect_error(kUseAwaitable, ec));
    queued_bytes_ -= message.size();
    room_.cancel();
    if (ec) closed_ = true;
  }
  writing_ = false;
  co_return !closed_;
}

Task<void> WebSocketSession::Close(CloseCode code, std::string_view reason) {
  if (close_sent_ || !accepted_) co_return;
  close_sent_ = true;
  close_in_flight_ = true;
  co_await SendClose(code, std::string(reason));
}

void WebSocketSession::CloseSoon(CloseCode code, std::string reason) {
  if (close_sent_ || !accepted_) return;
  close_sent_ = true;
  // Set now, not when the coroutine starts: Finish() must wait for it even if the
  // handler returns before it runs.
  close_in_flight_ = true;
  asio::co_spawn(room_.get_executor(), SendClose(code, std::move(reason)), asio::detached);
}

Task<void> WebSocketSession::SendClose(CloseCode code, std::string reason) {
  error_code ec;
  websocket::close_reason why(static_cast<websocket::close_code>(code), beast::string_view(reason.data(), reason.size()));
  co_await ws_.async_close(why, asio::redirect_error(kUseAwaitable, ec));
  close_in_flight_ = false;
  closed_ = true;
  room_.cancel();
  closing_.cancel();
}

Task<void> WebSocketSession::Finish() {
  if (!close_in_flight_) co_return;
  closing_.expires_after(config_.handshake_timeout);
  error_code ec;
  co_await closing_.async_wait(asio::redirect_error(kUseAwaitable, ec));
  if (close_in_flight_) {
    // The peer never answered the close: cut the socket and let the close complete.
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().cancel(ignored);
    while (close_in_flight_) {
      closing_.expires_after(std::chrono::milliseconds(10));
      co_await closing_.async_wait(asio::redirect_error(kUseAwaitable, ec));
    }
  }
}

void WebSocketSession::GoingAway() { CloseSoon(CloseCode::kGoingAway, "the server is shutting down"); }

}  // namespace chatd::http
