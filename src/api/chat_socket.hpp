// WebSocket /ws: the chat turn over one socket, several turns at once. Same turns and
// events as the SSE endpoint (chat::ChatService, api/turn_events.hpp), as JSON messages.
//
// Authentication, the first that is present: an `Authorization: Bearer` (or x-api-key)
// header on the upgrade request; a `bearer.<token>` entry in Sec-WebSocket-Protocol
// (browsers cannot set headers: `new WebSocket(url, ["chatd", "bearer." + token])`; the
// server selects "chatd"); or a first message `{"type":"auth","token":...}` within 10 s.
// A bad credential on the upgrade request is an HTTP 401; in a first message, a close
// with 1008. Once authenticated the server sends `{"type":"ready","user_id":...}`.
//
// Client messages: {"type":"chat","id":<string|integer>,"conversation_id":...,
// ...the fields of POST .../messages}, {"type":"regenerate","id":..,"conversation_id":..,
// "message_id":..}, {"type":"cancel","id":..}, {"type":"resume","id":..,"message_id":..,
// "after":N}, {"type":"ping"}. Server messages: the turn events with the client's "id"
// and "event_id"; {"type":"error","id"?,"error":{...}} for a refused message; "pong".
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "accounts/principal.hpp"
#include "api/guard.hpp"
#include "chat/chat_service.hpp"
#include "chat/generations.hpp"
#include "core/metrics.hpp"
#include "http/message.hpp"

namespace chatd::api {

class ChatSocket {
 public:
  ChatSocket(Guard& guard, chat::ChatService& chat, chat::Generations& generations, metrics::Registry& metrics);
  ~ChatSocket();

  /// GET /ws
  Task<http::Response> Serve(http::Request& request);

  /// Closes (1008) the sockets of `user_id` — only those authenticated with
  /// `credential_id` when it is not empty. Any thread.
  void Revoke(std::string_view user_id, std::string_view credential_id);

 private:
  class Session;
  struct Registration;

  Guard& guard_;
  chat::ChatService& chat_;
  chat::Generations& generations_;
  metrics::Gauge& connections_;
  std::mutex mutex_;
  std::vector<std::weak_ptr<Registration>> sessions_;
};

}  // namespace chatd::api
