// A chat turn's events as JSON, the same for SSE (`data:`) and WebSocket messages: every
// object carries its own "type", so clients can read it without the SSE `event:` line.
#pragma once

#include <string>
#include <string_view>

#include "chat/generation.hpp"

namespace chatd::api {

/// "message.created", "delta", "message.completed" or "error".
std::string_view EventName(chat::TurnEvent::Type type);

/// The event as a JSON object. `client_id`, when not empty, is raw JSON (a WebSocket
/// client's turn id) added as "id", with the event's own id as "event_id".
std::string EventJson(const chat::TurnEvent& event, std::string_view client_id);
/// The same, appended to `out` (a frame being built; its buffer is reused).
void AppendEventJson(std::string& out, const chat::TurnEvent& event, std::string_view client_id);

}  // namespace chatd::api
