#include "chat/chat_service.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/redirect_error.hpp>
#include <fmt/format.h>

#include "core/ids.hpp"
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

// The title of a conversation for a model that cannot write one (the demo): its first
// words, at most 6, cut at a sentence end.
std::string HeuristicTitle(std::string_view text) {
  std::string title;
  int words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space) {
      in_word = false;
      if (words == 6) break;
      continue;
    }
    if (!in_word) {
      if (words == 6) break;
      if (!title.empty()) title += ' ';
      ++words;
      in_word = true;
    }
    title += c;
    if ((c == '.' || c == '?' || c == '!') && words >= 2) break;
  }
  while (!title.empty() && (title.back() == '.' || title.back() == ',' || title.back() == ':')) title.pop_back();
  return title;
}

// A model's title, as models write them: quoted, with "Title:", on several lines.
std::string CleanTitle(std::string_view text) {
  std::string_view line = text.substr(0, text.find('\n'));
  if (line.starts_with("Title:")) line.remove_prefix(6);
  while (!line.empty() && (line.front() == ' ' || line.front() == '"' || line.front() == '\'' || line.front() == '#')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == ' ' || line.back() == '"' || line.back() == '\'' || line.back() == '.')) line.remove_suffix(1);
  return std::string(line);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Outside Generate's coroutine, whose frame every open stream holds: a TurnEvent there
// would be kept for the whole answer.
void FinishCompleted(Generation& generation, const MessageProgress& progress) {
  TurnEvent completed;
  completed.type = TurnEvent::Type::kCompleted;
  completed.usage = {progress.prompt_tokens, progress.completion_tokens};
  completed.finish_reason = *progress.finish_reason;
  generation.Finish(std::move(completed));
}

}  // namespace

ChatMetrics::ChatMetrics(metrics::Registry& registry, llm::CallMetrics& llm)
    : messages_processed(registry.AddCounter("chat_messages_processed_total", "Chat turns started.").WithLabels({})),
      llm(llm) {}

// What a generation needs once started, shared with its coroutine.
struct ChatService::Call {
  std::string user_id;
  std::string conversation_id;
  llm::Provider* provider = nullptr;
  llm::ModelInfo model;
  llm::ChatRequest request;
  bool untitled = false;     // title the conversation after this answer
  std::string user_content;  // the question, for the title
  std::chrono::steady_clock::time_point started;  // when the model was called
};

// The model call started while the turn's messages are stored, and a way to wait for it.
struct ChatService::PendingStream {
  explicit PendingStream(asio::any_io_executor executor) : ready(std::move(executor)) {}
  std::optional<Expected<std::unique_ptr<llm::ChatStream>>> result;
  bool abandoned = false;   // the turn failed before it began: close the stream on arrival
  asio::steady_timer ready;  // cancelled when `result` is set

  Task<Expected<std::unique_ptr<llm::ChatStream>>> Take() {
    while (!result) {
      ready.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await ready.async_wait(asio::redirect_error(kUseAwaitable, ec));
    }
    Expected<std::unique_ptr<llm::ChatStream>> taken = std::move(*result);
    result.reset();
    co_return taken;
  }
};


Task<Expected<std::vector<llm::ChatMessage>>> ChatService::BuildContext(std::string_view user_id,
                                                                        const Conversation& conversation,
                                                                        const std::optional<std::string>& history,
                                                                        const Message* question, std::int64_t budget) {
  std::vector<Message> branch;
  PageRequest page{100, {}};
  while (history) {
    auto chunk = co_await messages_.GetPath(user_id, conversation.id, *history, page);
    if (!chunk) co_return Unexpected{std::move(chunk).error()};
    for (auto& message : chunk->items) branch.push_back(std::move(message));
    page.cursor = chunk->next_cursor;
    if (page.cursor.empty() || static_cast<std::int64_t>(branch.size()) >= kMaxBranchMessages) break;
  }
  if (question != nullptr) branch.push_back(*question);

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

Task<Expected<std::shared_ptr<Generation>>> ChatService::Start(std::string_view user_id,
                                                               std::string_view conversation_id,
                                                               const TurnRequest& request) {
  if (!request.regenerate) {
    if (request.content.empty()) co_return MakeError(ErrorCode::kInvalidArgument, "content is required", "content");
    if (request.content.size() > kMaxContentBytes) {
      co_return MakeError(ErrorCode::kInvalidArgument, "content is longer than 256 KiB", "content");
    }
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
  if (resolved->info.embeddings) {
    co_return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} is an embedding model", resolved->info.id),
                        "model");
  }

  // The question being answered: an existing user message (regenerate), or a new one
  // under the given parent (or the current leaf), stored below with the answer.
  Message question;
  std::optional<Message> new_question;
  std::optional<std::string> history;  // the last message the model sees before the question
  if (request.regenerate) {
    auto target = co_await messages_.Get(user_id, conversation_id, *request.regenerate);
    if (!target) co_return Unexpected{std::move(target).error()};
    if (target->role == "assistant" && target->parent_id) {
      auto asked = co_await messages_.Get(user_id, conversation_id, *target->parent_id);
      if (!asked) co_return Unexpected{std::move(asked).error()};
      target = std::move(asked);
    }
    if (target->role != "user") {
      co_return MakeError(ErrorCode::kInvalidArgument, "only an answer to a user message can be regenerated");
    }
    question = std::move(*target);
    history = question.id;
  } else {
    std::optional<std::string> parent;
    if (request.parent_id) {
      parent = *request.parent_id;
      if (parent && !LooksLikeUuid(*parent)) co_return MakeError(ErrorCode::kNotFound, "message not found", "parent_id");
    } else {
      auto leaf = co_await messages_.CurrentLeaf(user_id, conversation_id);
      if (!leaf) co_return Unexpected{std::move(leaf).error()};
      parent = std::move(*leaf);
    }
    question = messages_.Draft(conversation_id, "user", request.content, parent, "complete", std::nullopt);
    new_question = question;
    history = std::move(parent);
  }

  auto call = std::make_shared<Call>();
  call->user_id = std::string(user_id);
  call->conversation_id = std::string(conversation_id);
  call->provider = &resolved->provider;
  call->model = resolved->info;
  call->untitled = conversation->title.empty();
  call->user_content = question.content;
  llm::ChatRequest& model_request = call->request;
  model_request.model = call->model.upstream_model;
  ApplyConversationParams(conversation->params, model_request);
  if (!model_request.temperature) model_request.temperature = config_.default_temperature;
  if (request.temperature) model_request.temperature = request.temperature;
  if (!model_request.max_tokens) model_request.max_tokens = config_.default_max_tokens;
  if (request.max_tokens) model_request.max_tokens = request.max_tokens;
  model_request.first_byte_timeout = config_.first_byte_timeout;
  model_request.idle_timeout = config_.idle_timeout;
  const std::int64_t window = call->model.context_window > 0 ? call->model.context_window : 8192;
  const Message* asked = new_question ? &*new_question : nullptr;  // not in the co_await's expression: g++ 12
  auto context = co_await BuildContext(user_id, *conversation, history, asked, window - *model_request.max_tokens);
  if (!context) co_return Unexpected{std::move(context).error()};
  model_request.messages = std::move(*context);

  // Call the model while the messages are stored: the time to the first token is the
  // longer of the two, not their sum. No event goes out before both messages exist.
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  auto pending = std::make_shared<PendingStream>(executor);
  call->started = std::chrono::steady_clock::now();
  asio::co_spawn(executor, OpenStream(pending, call), asio::detached);
  const Message answer = messages_.Draft(conversation_id, "assistant", "", question.id, "streaming", call->model.id);
  auto stored = co_await messages_.StartTurn(user_id, conversation_id, new_question, answer);
  if (!stored) {
    pending->abandoned = true;
    co_return Unexpected{std::move(stored).error()};
  }

  GenerationInfo info;
  info.message_id = answer.id;
  info.conversation_id = call->conversation_id;
  info.user_message_id = question.id;
  info.user_id = call->user_id;
  info.credential_id = request.credential_id;
  info.cancel_on_disconnect = request.cancel_on_disconnect;
  auto generation = std::make_shared<Generation>(std::move(info), executor);
  generations_.Add(generation);
  metrics_.messages_processed.Inc();
  asio::co_spawn(executor, Generate(generation, std::move(call), std::move(pending)), asio::detached);
  co_return generation;
}

Task<void> ChatService::OpenStream(std::shared_ptr<PendingStream> pending, std::shared_ptr<Call> call) {
  auto opened = co_await call->provider->StreamChat(call->request);
  // Nobody will read it (the messages could not be stored): close it now. No Next() is
  // pending, so dropping it after Cancel() is safe.
  if (pending->abandoned && opened) (*opened)->Cancel();
  pending->result = std::move(opened);
  pending->ready.cancel();
}

Task<void> ChatService::Generate(std::shared_ptr<Generation> generation, std::shared_ptr<Call> call,
                                 std::shared_ptr<PendingStream> pending) {
  const std::string& message_id = generation->info().message_id;
  const std::string provider_name(call->provider->name());
  const auto started = call->started;
  MessageProgress progress;
  progress.status = "streaming";
  // The growing answer is stored in batches (AnswerWriter), so the database never slows
  // the stream; its final state is written here, once no batch holding it can land after.
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  auto store_growing = [&] {
    MessageProgress snapshot = progress;
    snapshot.content = generation->Content();
    answers_.Put(executor, call->user_id, message_id, std::move(snapshot));
  };
  auto flush = [&]() -> Task<void> {
    co_await answers_.Settle(message_id);
    progress.content = generation->Content();
    auto stored = co_await messages_.FlushAssistant(call->user_id, message_id, progress);
    if (!stored) log::Warn("cannot store the answer", {{"message_id", message_id}, {"error", stored.error().message}});
  };
  auto record = [&](std::string_view status) {
    metrics_.llm.Record(provider_name, call->model.id, status, SecondsSince(started), progress.prompt_tokens,
                        progress.completion_tokens);
  };
  auto fail = [&](Error error) -> Task<void> {
    progress.status = "error";
    progress.error = error.message;
    co_await flush();
    record("error");
    TurnEvent failed;
    failed.type = TurnEvent::Type::kError;
    failed.error = std::move(error);
    generation->Finish(std::move(failed));
  };

  auto opened = co_await pending->Take();
  if (!opened) {
    co_await fail(std::move(opened).error());
    co_return;
  }
  // Shared so that a cancel (posted to this executor) reaches the stream while it lives.
  std::shared_ptr<llm::ChatStream> stream = std::move(*opened);
  std::function<void()> cancel = [weak = std::weak_ptr<llm::ChatStream>(stream)] {
    if (auto live = weak.lock()) live->Cancel();
  };
  generation->OnCancel(std::move(cancel));
  if (generation->cancel_requested()) stream->Cancel();  // asked while the call was opening

  bool first_token = true;
  std::int64_t pieces = 0;  // what was generated, when the provider reports no usage
  auto last_flush = std::chrono::steady_clock::now();
  std::size_t flushed_size = 0;
  while (true) {
    auto chunk = co_await stream->Next();
    if (!chunk && generation->cancel_requested()) break;
    if (!chunk) {
      co_await fail(std::move(chunk).error());
      co_return;
    }
    if (!*chunk) break;  // the stream ended without a final chunk: treat as complete
    const llm::ChatChunk& piece = **chunk;
    if (!piece.delta.empty()) {
      if (first_token) {
        first_token = false;
        metrics_.llm.first_token.WithLabels({provider_name, call->model.id}).Observe(SecondsSince(started));
      }
      if (generation->content_size() + piece.delta.size() <= kMaxStoredAnswerBytes) {
        generation->AppendDelta(piece.delta);
        ++pieces;
      }
    }
    if (std::chrono::steady_clock::now() - started > config_.max_duration) {
      stream->Cancel();
      Error too_long{ErrorCode::kUpstreamTimeout, "the answer took longer than the maximum duration"};
      co_await fail(std::move(too_long));  // not a temporary: g++ 12 and co_await, see above
      co_return;
    }
    if (piece.usage) {
      progress.prompt_tokens = piece.usage->prompt_tokens;
      progress.completion_tokens = piece.usage->completion_tokens;
    }
    if (!piece.finish_reason.empty()) progress.finish_reason = piece.finish_reason;
    const auto now = std::chrono::steady_clock::now();
    const std::size_t size = generation->content_size();
    if (size - flushed_size >= config_.flush_bytes || now - last_flush >= config_.flush_interval) {
      store_growing();
      last_flush = now;
      flushed_size = size;
    }
  }

  const bool cancelled = generation->cancel_requested();
  if (progress.completion_tokens == 0) progress.completion_tokens = pieces;
  progress.status = cancelled ? "cancelled" : "complete";
  if (cancelled) progress.finish_reason = "cancelled";
  if (!progress.finish_reason) progress.finish_reason = "stop";
  co_await flush();
  record(cancelled ? "cancelled" : "ok");
  FinishCompleted(*generation, progress);
  if (call->untitled && !cancelled) co_await GiveTitle(*call, progress.content);
}

// In the background after the first answer: it is not waited for by anyone.
Task<void> ChatService::GiveTitle(const Call& call, std::string_view answer) {
  std::string title;
  if (call.provider->name() == "demo") {
    title = HeuristicTitle(call.user_content);
  } else {
    llm::ChatRequest request;
    request.model = call.model.upstream_model;
    request.max_tokens = 24;
    request.temperature = 0.2;
    request.first_byte_timeout = config_.first_byte_timeout;
    request.idle_timeout = config_.idle_timeout;
    request.messages.push_back({"system",
                                "Write a title of at most six words for the conversation below. "
                                "Answer with the title only, without quotes."});
    request.messages.push_back({"user", call.user_content.substr(0, 4000)});
    request.messages.push_back({"assistant", std::string(answer.substr(0, 4000))});
    auto stream = co_await call.provider->StreamChat(request);
    if (stream) {
      while (true) {
        auto chunk = co_await (*stream)->Next();
        if (!chunk || !*chunk) break;
        title += (*chunk)->delta;
        if (title.size() > 400) break;
      }
    }
    title = CleanTitle(title);
    if (title.empty()) title = HeuristicTitle(call.user_content);  // the model failed: still a title
  }
  if (title.empty()) co_return;
  auto set = co_await conversations_.SetTitleIfUntitled(call.user_id, call.conversation_id, title);
  if (!set) log::Warn("cannot store a conversation title", {{"conversation_id", call.conversation_id}, {"error", set.error().message}});
}

namespace {

// Waits for a generation's end without delivering anything.
class DrainSink final : public TurnSink {
 public:
  Task<bool> Send(const TurnEvent&) override { co_return true; }
};

}  // namespace

Task<Expected<Message>> ChatService::Run(std::string_view user_id, std::string_view conversation_id,
                                         const TurnRequest& request, TurnSink& sink) {
  auto generation = co_await Start(user_id, conversation_id, request);
  if (!generation) co_return Unexpected{std::move(generation).error()};
  const bool followed = co_await (*generation)->Follow(0, sink, config_.ping_interval);
  if (!followed) {
    DrainSink drain;
    co_await (*generation)->Follow(0, drain, config_.ping_interval);
  }
  co_return co_await messages_.Get(user_id, conversation_id, (*generation)->info().message_id);
}

}  // namespace chatd::chat
