// The chat turn: store the user's message, build the model's context from the active
// branch, stream the answer to the client while storing it as it grows, and store how it
// ended. Transport-free: events go to a TurnSink (SSE today; WebSocket next), so the turn
// is the same whoever listens, and testable without a socket.
//
// Nothing is ever lost: the assistant message exists (status "streaming") before the first
// token, is rewritten at most every flush_interval or flush_bytes while it grows, and ends
// as "complete" or "error"; a process that dies mid-answer leaves what had arrived, and the
// next start marks it "incomplete" (MessageService::MarkInterrupted).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "chat/conversation_service.hpp"
#include "chat/generations.hpp"
#include "chat/message_service.hpp"
#include "core/asio.hpp"
#include "core/expected.hpp"
#include "llm/model_registry.hpp"
#include "llm/provider.hpp"

namespace chatd::chat {

struct TurnEvent {
  enum class Type { kMessageCreated, kDelta, kCompleted, kError };
  Type type = Type::kDelta;
  std::string conversation_id;       // kMessageCreated
  std::string user_message_id;       // kMessageCreated
  std::string assistant_message_id;  // every event
  std::string content;               // kDelta
  llm::Usage usage;                  // kCompleted
  std::string finish_reason;         // kCompleted
  Error error;                       // kError
};

/// Where a turn's events go: an SSE response, a WebSocket, or a collector.
class TurnSink {
 public:
  virtual ~TurnSink() = default;
  /// Delivers one event. False once the client is gone: the turn then goes on without it
  /// (bounded by max_tokens and the provider's timeouts) and keeps storing the answer.
  virtual Task<bool> Send(const TurnEvent& event) = 0;
};

struct TurnRequest {
  std::string content;
  /// Absent: under the conversation's current leaf; nullopt inside: a new root; an id:
  /// under that message (editing a message is a new sibling of it).
  std::optional<std::optional<std::string>> parent_id;
  std::string model;  // empty: the conversation's model, else the default
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
  /// Stop generating when the client leaves (`"on_disconnect": "cancel"`); by default
  /// the answer is finished and stored without it.
  bool cancel_on_disconnect = false;
  /// The credential that started the turn (an API key id; empty for a session), so that
  /// revoking it stops its generations.
  std::string credential_id;
};

struct ChatConfig {
  std::int64_t default_max_tokens = 1024;       // LLM_MAX_TOKENS
  std::optional<double> default_temperature;    // LLM_TEMPERATURE
  std::chrono::milliseconds first_byte_timeout{30'000};
  std::chrono::milliseconds idle_timeout{30'000};
  /// The longest a generation may run, listened to or not (LLM_MAX_DURATION).
  std::chrono::milliseconds max_duration{10 * 60'000};
  std::chrono::milliseconds flush_interval{1'000};  // store the growing answer this often...
  std::size_t flush_bytes = 1024;                    // ...or after this much new text
};

class ChatService {
 public:
  ChatService(ChatConfig config, ConversationService& conversations, MessageService& messages,
              const llm::ModelRegistry& models, Generations& generations)
      : config_(config),
        conversations_(conversations),
        messages_(messages),
        models_(models),
        generations_(generations) {}

  /// Runs one turn on the caller's executor. Problems found before anything is stored
  /// (bad input, someone else's conversation, an unknown model) are returned as errors
  /// and send nothing; after that, a failure ends the turn with an error event and the
  /// message stored with status "error", and a cancel (Generations) with
  /// `message.completed` whose finish_reason is "cancelled" and the message stored as
  /// "cancelled". Returns the assistant message as stored last.
  Task<Expected<Message>> Run(std::string_view user_id, std::string_view conversation_id,
                              const TurnRequest& request, TurnSink& sink);

 private:
  // The model's context: the system prompt, then as much of the active branch as fits in
  // `budget` tokens, newest kept first.
  Task<Expected<std::vector<llm::ChatMessage>>> BuildContext(std::string_view user_id, const Conversation& conversation,
                                                             std::int64_t budget);

  ChatConfig config_;
  ConversationService& conversations_;
  MessageService& messages_;
  const llm::ModelRegistry& models_;
  Generations& generations_;
};

}  // namespace chatd::chat
