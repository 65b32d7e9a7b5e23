#include "chat/chat_service.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>

#include <fmt/format.h>

#include "core/json.hpp"
#include "core/log.hpp"

namespace chatd::chat {

namespace {

constexpr std::size_t kMaxContentBytes = 256 * 1024;  // one user message
constexpr std::size_t kMaxStoredAnswerBytes = 1024 * 1024;
constexpr std::int64_t kMaxBranchMessages = 2000;  // read at most this much history

// A rough token count (about 4/3 tokens per word, plus framing) for fitting history into a
// context window; providers report the real usage.
std::int64_t EstimateTokens(std::string_view text) {
  std::int64_t words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words * 4 / 3 + 4;
}

// Generation parameters stored on the conversation ({"temperature":..,"max_tokens":..}).
void ApplyConversationParams(std::string_view params, llm::ChatRequest& request) {
  simdjson::dom::parser parser;
  auto parsed = ParseJson(parser, params);
  if (!parsed) return;
  double number = 0;
  if ((*parsed)["temperature"].get(number) == simdjson::SUCCESS) request.temperature = number;
  if ((*parsed)["top_p"].get(number) == simdjson::SUCCESS) request.top_p = number;
  std::int64_t tokens = 0;
  if ((*parsed)["max_tokens"].get(tokens) == simdjson::SUCCESS) request.max_tokens = tokens;
}

}  // namespace

Task<Expected<std::vector<llm::ChatMessage>>> ChatService::BuildContext(std::string_view user_id,
                                                                        const Conversation& conversation,
                                                                        std::int64_t budget) {
  std::vector<Message> branch;
  PageRequest page{100, {}};
  do {
    auto chunk = co_await messages_.GetBranch(user_id, conversation.id, page, false);
    if (!chunk) co_return Unexpected{std::move(chunk).error()};
    for (auto& entry : chunk->items) branch.push_back(std::move(entry.message));
    page.cursor = chunk->next_cursor;
  } while (!page.cursor.empty() && static_cast<std::int64_t>(branch.size()) < kMaxBranchMessages);

  std::vector<llm::ChatMessage> context;
  if (conversation.system_prompt && !conversation.system_prompt->empty()) {
    context.push_back({"system", *conversation.system_prompt});
    budget -= EstimateTokens(*conversation.system_prompt);
  }
  // Newest first until the window is full; the newest message (the user's) always goes.
  std::size_t first = branch.size();
  while (first > 0) {
    const Message& message = branch[first - 1];
    const std::int64_t cost = EstimateTokens(message.content);
    if (first < branch.size() && cost > budget) break;
    budget -= cost;
    --first;
  }
  for (std::size_t i = first; i < branch.size(); ++i) {
    if (branch[i].content.empty() && branch[i].role == "assistant") continue;  // a failed answer
    context.push_back({branch[i].role, branch[i].content});
  }
  co_return context;
}

Task<Expected<Message>> ChatService::Run(std::string_view user_id, std::string_view conversation_id,
                                         const TurnRequest& request, TurnSink& sink) {
  if (request.content.empty()) co_return MakeError(ErrorCode::kInvalidArgument, "content is required", "content");
  if (request.content.size() > kMaxContentBytes) {
    co_return MakeError(ErrorCode::kInvalidArgument, "content is longer than 256 KiB", "content");
  }
  if (request.max_tokens && (*request.max_tokens < 1 || *request.max_tokens > 1'000'000)) {
    co_return MakeError(ErrorCode::kInvalidArgument, "max_tokens must be from 1 to 1000000", "max_tokens");
  }
  if (request.temperature && (*request.temperature < 0 || *request.temperature > 2)) {
    co_return MakeError(ErrorCode::kInvalidArgument, "temperature must be from 0 to 2", "temperature");
  }
  auto conversation = co_await conversations_.Get(user_id, conversation_id);
  if (!conversation) co_return Unexpected{std::move(conversation).error()};
  auto resolved = models_.Resolve(!request.model.empty() ? request.model : conversation->model);
  if (!resolved) co_return Unexpected{std::move(resolved).error()};
  llm::Provider& provider = resolved->provider;
  const llm::ModelInfo& model = resolved->info;
  if (model.embeddings) {
    co_return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} is an embedding model", model.id), "model");
  }

  auto user_message = co_await messages_.AddUserMessage(user_id, conversation_id, request.content, request.parent_id);
  if (!user_message) co_return Unexpected{std::move(user_message).error()};

  llm::ChatRequest call;
  call.model = model.upstream_model;
  ApplyConversationParams(conversation->params, call);
  if (!call.temperature) call.temperature = config_.default_temperature;
  if (request.temperature) call.temperature = request.temperature;
  if (!call.max_tokens) call.max_tokens = config_.default_max_tokens;
  if (request.max_tokens) call.max_tokens = request.max_tokens;
  call.first_byte_timeout = config_.first_byte_timeout;
  call.idle_timeout = config_.idle_timeout;
  const std::int64_t window = model.context_window > 0 ? model.context_window : 8192;
  auto context = co_await BuildContext(user_id, *conversation, window - *call.max_tokens);
  if (!context) co_return Unexpected{std::move(context).error()};
  call.messages = std::move(*context);

  auto assistant = co_await messages_.StartAssistantMessage(user_id, conversation_id, user_message->id, model.id);
  if (!assistant) co_return Unexpected{std::move(assistant).error()};
  const std::string assistant_id = assistant->id;

  TurnEvent created;
  created.type = TurnEvent::Type::kMessageCreated;
  created.conversation_id = std::string(conversation_id);
  created.user_message_id = user_message->id;
  created.assistant_message_id = assistant_id;
  bool listening = co_await sink.Send(created);

  MessageProgress progress;
  progress.status = "streaming";
  // Stores the answer as it is now; a failed write is logged and retried at the next one.
  auto flush = [&]() -> Task<void> {
    auto stored = co_await messages_.FlushAssistant(user_id, assistant_id, progress);
    if (!stored) log::Warn("cannot store the growing answer", {{"message_id", assistant_id}, {"error", stored.error().message}});
  };
  auto fail = [&](Error error) -> Task<Expected<Message>> {
    progress.status = "error";
    progress.error = error.message;
    co_await flush();
    if (listening) {
      TurnEvent failed;
      failed.type = TurnEvent::Type::kError;
      failed.assistant_message_id = assistant_id;
      failed.error = std::move(error);
      co_await sink.Send(failed);
    }
    co_return co_await messages_.Get(user_id, conversation_id, assistant_id);
  };

  auto opened = co_await provider.StreamChat(call);
  if (!opened) co_return co_await fail(std::move(opened).error());
  // Shared so a cancel arriving through Generations (posted to this executor) can reach
  // the stream while it lives and do nothing after.
  std::shared_ptr<llm::ChatStream> stream = std::move(*opened);
  auto cancelled = std::make_shared<bool>(false);
  // Separate statements: g++ 12 destroys temporaries twice in a full-expression that
  // also holds a co_await.
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  std::function<void()> cancel = [weak = std::weak_ptr<llm::ChatStream>(stream), cancelled] {
    *cancelled = true;
    if (auto live = weak.lock()) live->Cancel();
  };
  generations_.Add(assistant_id, std::string(user_id), request.credential_id, executor, std::move(cancel));
  struct Unregister {
    Generations& generations;
    const std::string& id;
    ~Unregister() { generations.Remove(id); }
  } unregister{generations_, assistant_id};

  const auto started = std::chrono::steady_clock::now();
  auto last_flush = started;
  std::size_t unflushed = 0;
  std::int64_t pieces = 0;  // what was generated, when the provider reports no usage
  while (true) {
    auto chunk = co_await stream->Next();
    if (!chunk && *cancelled) break;
    if (!chunk) co_return co_await fail(std::move(chunk).error());
    if (!*chunk) break;  // the stream ended without a final chunk: treat as complete
    const llm::ChatChunk& piece = **chunk;
    if (!piece.delta.empty() && progress.content.size() + piece.delta.size() <= kMaxStoredAnswerBytes) {
      progress.content += piece.delta;
      unflushed += piece.delta.size();
      ++pieces;
      if (listening) {
        TurnEvent delta;
        delta.type = TurnEvent::Type::kDelta;
        delta.assistant_message_id = assistant_id;
        delta.content = piece.delta;
        listening = co_await sink.Send(delta);
        if (!listening && request.cancel_on_disconnect) {
          *cancelled = true;
          stream->Cancel();
        }
      }
    }
    if (std::chrono::steady_clock::now() - started > config_.max_duration) {
      stream->Cancel();
      Error too_long{ErrorCode::kUpstreamTimeout, "the answer took longer than the maximum duration"};
      co_return co_await fail(std::move(too_long));  // not a temporary: see the g++ 12 note above
    }
    if (piece.usage) {
      progress.prompt_tokens = piece.usage->prompt_tokens;
      progress.completion_tokens = piece.usage->completion_tokens;
    }
    if (!piece.finish_reason.empty()) progress.finish_reason = piece.finish_reason;
    const auto now = std::chrono::steady_clock::now();
    if (unflushed >= config_.flush_bytes || now - last_flush >= config_.flush_interval) {
      co_await flush();
      last_flush = now;
      unflushed = 0;
    }
  }

  if (progress.completion_tokens == 0) progress.completion_tokens = pieces;
  progress.status = *cancelled ? "cancelled" : "complete";
  if (*cancelled) progress.finish_reason = "cancelled";
  if (!progress.finish_reason) progress.finish_reason = "stop";
  co_await flush();
  if (listening) {
    TurnEvent completed;
    completed.type = TurnEvent::Type::kCompleted;
    completed.assistant_message_id = assistant_id;
    completed.usage = {progress.prompt_tokens, progress.completion_tokens};
    completed.finish_reason = *progress.finish_reason;
    co_await sink.Send(completed);
  }
  co_return co_await messages_.Get(user_id, conversation_id, assistant_id);
}

}  // namespace chatd::chat
