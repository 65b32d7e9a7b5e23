// The chat turn: store the user's message, build the model's context from its branch,
// generate the answer while storing it as it grows, and store how it ended. Transport-free:
// a turn is a Generation (chat/generation.hpp) that runs on its own coroutine and that
// SSE responses, WebSockets and tests follow through a TurnSink, so the turn is the same
// whoever listens — or if nobody does — and testable without a socket.
//
// Nothing is ever lost: the assistant message exists (status "streaming") before the first
// token, is rewritten at most every flush_interval or flush_bytes while it grows, and ends
// as "complete" or "error"; a process that dies mid-answer leaves what had arrived, and the
// next start marks it "incomplete" (MessageService::MarkInterrupted).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "chat/answer_writer.hpp"
#include "chat/conversation_service.hpp"
#include "chat/generation.hpp"
#include "chat/generations.hpp"
#include "chat/message_service.hpp"
#include "core/asio.hpp"
#include "core/expected.hpp"
#include "core/metrics.hpp"
#include "llm/call_metrics.hpp"
#include "llm/model_registry.hpp"
#include "llm/provider.hpp"

namespace chatd::chat {

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
  /// Regenerate: no new user message; a new answer to this one (a user message), or a
  /// new sibling of this one (an assistant message). `content`/`parent_id` are unused.
  std::optional<std::string> regenerate;
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
                                                     // (in batches: AnswerWriter)
  /// How long a quiet stream waits before a keep-alive (SSE `: ping`).
  std::chrono::milliseconds ping_interval{15'000};
  /// How long a finished generation can still be resumed event by event (Generations).
  std::chrono::milliseconds resume_window{120'000};
};

/// The chat metrics, and the model-call metrics it shares with the gateway
/// (llm/call_metrics.hpp: llm_requests_total, llm_request_duration_seconds,
/// llm_time_to_first_token_seconds, llm_tokens_total).
struct ChatMetrics {
  ChatMetrics(metrics::Registry& registry, llm::CallMetrics& llm);
  metrics::Counter& messages_processed;  // chat_messages_processed_total
  llm::CallMetrics& llm;
};

class ChatService {
 public:
  ChatService(ChatConfig config, ConversationService& conversations, MessageService& messages,
              const llm::ModelRegistry& models, Generations& generations, ChatMetrics& metrics)
      : config_(config),
        conversations_(conversations),
        messages_(messages),
        models_(models),
        generations_(generations),
        metrics_(metrics),
        answers_(messages, config.flush_interval) {}

  /// Starts one turn: checks it, stores the user's message (unless regenerating) and an
  /// empty assistant message, registers the Generation and starts it on the caller's
  /// executor. Problems found before anything is stored (bad input, someone else's
  /// conversation or message, an unknown model) are returned as errors. After that, the
  /// generation's log ends with `error` (stored as "error") on a failure, or with
  /// `message.completed` whose finish_reason is "cancelled" after a cancel (stored as
  /// "cancelled").
  Task<Expected<std::shared_ptr<Generation>>> Start(std::string_view user_id, std::string_view conversation_id,
                                                    const TurnRequest& request);

  /// Start, follow with `sink` (a sink that leaves does not stop it unless the request
  /// says so), and wait for the end. Returns the assistant message as stored last.
  Task<Expected<Message>> Run(std::string_view user_id, std::string_view conversation_id,
                              const TurnRequest& request, TurnSink& sink);

  const ChatConfig& config() const { return config_; }

 private:
  struct Call;
  struct PendingStream;
  // The model's context: the system prompt, then as much of the path to `history` (none:
  // a new root) plus `question` (when it is not stored yet) as fits in `budget` tokens,
  // newest kept first.
  Task<Expected<std::vector<llm::ChatMessage>>> BuildContext(std::string_view user_id, const Conversation& conversation,
                                                             const std::optional<std::string>& history,
                                                             const Message* question, std::int64_t budget);
  // Calls the model for `call` and leaves the stream (or the error) in `pending`.
  Task<void> OpenStream(std::shared_ptr<PendingStream> pending, std::shared_ptr<Call> call);
  // Generates into `generation` on its executor, storing as it goes; then titles the
  // conversation when it was untitled.
  Task<void> Generate(std::shared_ptr<Generation> generation, std::shared_ptr<Call> call,
                      std::shared_ptr<PendingStream> pending);
  Task<void> GiveTitle(const Call& call, std::string_view answer);


  ChatConfig config_;
  ConversationService& conversations_;
  MessageService& messages_;
  const llm::ModelRegistry& models_;
  Generations& generations_;
  ChatMetrics& metrics_;
  AnswerWriter answers_;
};

}  // namespace chatd::chat
