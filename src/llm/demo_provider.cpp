#include "llm/demo_provider.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>

#include <boost/asio/redirect_error.hpp>

namespace chatd::llm {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kDemo = "demo";
constexpr std::string_view kDemoSlow = "demo-slow";
constexpr std::string_view kDemoStall = "demo-stall";
constexpr std::string_view kDemoError = "demo-error";
constexpr std::string_view kDemoEmbedding = "demo-embedding";

constexpr std::int64_t kSlowReplyTokens = 100;
constexpr std::int64_t kPerMessageOverhead = 4;  // role and separators, as real tokenizers count
constexpr std::int64_t kPromptOverhead = 2;      // the assistant turn's priming
constexpr std::size_t kMaxQuotedWords = 24;
constexpr std::size_t kMaxQuotedBytes = 200;
constexpr std::size_t kMaxQuotedWordBytes = 48;

// The explanatory text the reply continues with; the conversation's hash picks the order.
constexpr std::array<std::string_view, 12> kSentences = {
    "This answer comes from chatd's built-in demo model, so no real language model wrote it.",
    "The demo model streams a deterministic reply word by word, which makes it handy for trying "
    "the interface and for tests.",
    "To get real answers, configure an OpenAI-compatible provider such as OpenAI, DeepSeek, "
    "Ollama, vLLM or llama.cpp.",
    "Everything else works as it will with a real model: the reply is stored as it streams, and "
    "you can cancel it or resume it later.",
    "Each word you see arrived as its own event, at a steady pace, just as tokens do from a real "
    "provider.",
    "Asking the same question again gives the same answer, while a different question leads to a "
    "different one.",
    "The demo model also reports token usage, counting words, so budgets and limits can be tried "
    "out offline.",
    "Try the slow, stalling and failing variants of this model to see how clients cope with "
    "trouble upstream.",
    "Conversations keep their history, and editing a message starts a new branch you can switch "
    "back from.",
    "Nothing here leaves your machine: the demo model needs no network and no API key.",
    "Once a provider is configured, pick its models by name, or keep this one for quick checks.",
    "Thank you for trying chatd; I hope this little demonstration shows how the pieces fit.",
};

std::uint64_t Fnv1a(std::uint64_t hash, std::string_view bytes) {
  for (const unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}
constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

std::uint64_t SplitMix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

std::int64_t CountWords(std::string_view text) {
  std::int64_t count = 0;
  bool in_word = false;
  for (const char c : text) {
    const bool space = IsSpace(c);
    if (!space && !in_word) ++count;
    in_word = !space;
  }
  return count;
}

// Cuts `text` to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view CutUtf8(std::string_view text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

// The start of the user's last message, bounded, on one line.
std::string Quote(std::string_view message) {
  std::string quote;
  std::size_t taken = 0;
  const std::vector<std::string_view> words = Words(message);
  for (const std::string_view word : words) {
    if (taken == kMaxQuotedWords || quote.size() >= kMaxQuotedBytes) break;
    if (!quote.empty()) quote += ' ';
    const std::string_view cut = CutUtf8(word, kMaxQuotedWordBytes);
    quote += cut;
    if (cut.size() < word.size()) quote += "…";
    ++taken;
  }
  if (taken < words.size()) quote += " …";
  return quote;
}

std::int64_t PromptTokens(const std::vector<ChatMessage>& messages) {
  std::int64_t tokens = kPromptOverhead;
  for (const ChatMessage& message : messages) tokens += kPerMessageOverhead + CountWords(message.content);
  return tokens;
}

// The reply: a quote of the last user message, then the explanatory sentences in an order
// seeded by the whole conversation. `min_words` 0 picks 3 to 5 sentences; otherwise the
// sentences cycle until the reply has `min_words` words, and it is cut there.
std::string BuildReply(const std::vector<ChatMessage>& messages, std::int64_t min_words) {
  std::uint64_t seed = kFnvOffset;
  for (const ChatMessage& message : messages) {
    seed = Fnv1a(seed, message.role);
    seed = Fnv1a(seed, "\x1f");
    seed = Fnv1a(seed, message.content);
    seed = Fnv1a(seed, "\x1e");
  }
  std::string_view last_user;
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (it->role == "user") {
      last_user = it->content;
      break;
    }
  }
  if (last_user.empty() && !messages.empty()) last_user = messages.back().content;

  std::string reply;
  const std::string quote = Quote(last_user);
  if (quote.empty()) {
    reply = "You have not asked anything yet.";
  } else {
    reply = "You said: \"" + quote + "\".";
  }

  std::array<std::size_t, kSentences.size()> order;
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::uint64_t state = seed;
  for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[SplitMix64(state) % (i + 1)]);

  if (min_words <= 0) {
    const std::size_t count = 3 + SplitMix64(state) % 3;
    for (std::size_t i = 0; i < count; ++i) (reply += ' ') += kSentences[order[i]];
    return reply;
  }
  for (std::size_t i = 0; CountWords(reply) < min_words; ++i) (reply += ' ') += kSentences[order[i % order.size()]];
  const std::vector<std::string_view> words = Words(reply);
  std::string cut;
  for (std::int64_t i = 0; i < min_words; ++i) {
    if (i > 0) cut += ' ';
    cut += words[static_cast<std::size_t>(i)];
  }
  return cut;
}

// Streams `text_` word by word, one word per `interval_`, enforcing the request's timeouts
// with one timer that Cancel() cancels.
class DemoStream final : public ChatStream {
 public:
  struct Plan {
    std::string text;                         // words separated by single spaces
    std::int64_t limit = 0;                   // words to send before finishing
    std::string finish_reason;                // "stop" or "length"
    std::optional<std::int64_t> stall_after;  // stop sending (and time out) after this many
    milliseconds interval{0};
    milliseconds first_byte_timeout{0};
    milliseconds idle_timeout{0};
    std::int64_t prompt_tokens = 0;
  };

  DemoStream(asio::any_io_executor executor, Plan plan) : timer_(std::move(executor)), plan_(std::move(plan)) {}

  Task<Expected<std::optional<ChatChunk>>> Next() override {
    if (cancelled_) co_return Cancelled();
    if (failure_) co_return Unexpected{*failure_};
    if (done_) co_return std::optional<ChatChunk>{};

    const bool first = sent_ == 0;
    const milliseconds timeout = first ? plan_.first_byte_timeout : plan_.idle_timeout;
    const bool stalled = plan_.stall_after && sent_ >= *plan_.stall_after;
    const bool times_out = stalled || plan_.interval > timeout;
    const milliseconds wait = times_out ? timeout : plan_.interval;
    if (wait > milliseconds(0)) {
      timer_.expires_after(wait);
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(kUseAwaitable, ec));
      // Cancel() may run after the timer fired but before we resumed: the flag decides.
      if (cancelled_ || ec) {
        cancelled_ = true;
        co_return Cancelled();
      }
    }
    if (times_out) {
      failure_ =
          Error{ErrorCode::kUpstreamTimeout, std::string(first ? "no first token" : "no token") +
                                                 " from the model within " + std::to_string(timeout.count()) + " ms"};
      co_return Unexpected{*failure_};
    }

    ChatChunk chunk;
    const std::size_t space = plan_.text.find(' ', pos_);
    const std::size_t end = space == std::string::npos ? plan_.text.size() : space + 1;
    ++sent_;
    const bool last = sent_ >= plan_.limit;
    // The last word goes without its trailing space.
    chunk.delta = plan_.text.substr(pos_, (last && space != std::string::npos ? space : end) - pos_);
    pos_ = end;
    if (last) {
      done_ = true;
      chunk.finish_reason = plan_.finish_reason;
      chunk.usage = Usage{.prompt_tokens = plan_.prompt_tokens, .completion_tokens = sent_};
    }
    co_return std::optional<ChatChunk>(std::move(chunk));
  }

  void Cancel() override {
    cancelled_ = true;
    timer_.cancel();
  }

 private:
  static Unexpected Cancelled() { return MakeError(ErrorCode::kUnavailable, "cancelled"); }

  asio::steady_timer timer_;
  Plan plan_;
  std::size_t pos_ = 0;
  std::int64_t sent_ = 0;
  bool done_ = false;
  bool cancelled_ = false;
  std::optional<Error> failure_;
};

bool IsChatModel(std::string_view model) {
  return model == kDemo || model == kDemoSlow || model == kDemoStall || model == kDemoError;
}

Unexpected UnknownModel(std::string_view model) {
  return MakeError(ErrorCode::kNotFound, "model '" + std::string(model) + "' does not exist", "model");
}

void Normalise(std::vector<float>& vector) {
  double norm = 0;
  for (const float x : vector) norm += static_cast<double>(x) * x;
  norm = std::sqrt(norm);
  for (float& x : vector) x = static_cast<float>(x / norm);
}

// Feature hashing of lower-cased words and their character trigrams: deterministic, and
// texts sharing words get similar vectors, so retrieval demos behave sensibly.
std::vector<float> EmbedText(std::string_view text, int dimensions) {
  const auto dims = static_cast<std::uint64_t>(dimensions);
  std::vector<float> vector(static_cast<std::size_t>(dimensions), 0.0f);
  bool any = false;
  auto add = [&](std::string_view feature, float weight) {
    const std::uint64_t hash = Fnv1a(kFnvOffset, feature);
    vector[static_cast<std::size_t>(hash % dims)] += (hash >> 63) != 0 ? -weight : weight;
    any = true;
  };
  for (const std::string_view raw : Words(text)) {
    std::string word(raw);
    for (char& c : word) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    add(word, 1.0f);
    const std::string padded = "#" + word + "#";
    for (std::size_t i = 0; i + 3 <= padded.size(); ++i) add(std::string_view(padded).substr(i, 3), 0.25f);
  }
  double norm = 0;
  for (const float x : vector) norm += static_cast<double>(x) * x;
  if (!any || norm == 0) {  // no features (empty text) or they cancelled out: a fixed vector
    std::uint64_t state = Fnv1a(kFnvOffset, text);
    for (float& x : vector) x = static_cast<float>(SplitMix64(state) >> 11) / static_cast<float>(1ULL << 53) - 0.5f;
  }
  Normalise(vector);
  return vector;
}

}  // namespace

std::vector<ModelInfo> DemoProvider::Models() {
  std::vector<ModelInfo> models;
  for (const std::string_view id : {kDemo, kDemoSlow, kDemoStall, kDemoError}) {
    models.push_back(ModelInfo{.id = std::string(id),
                               .provider = std::string(kName),
                               .upstream_model = std::string(id),
                               .context_window = 8192,
                               .embeddings = false,
                               .owned_by = "chatd"});
  }
  models.push_back(ModelInfo{.id = std::string(kDemoEmbedding),
                             .provider = std::string(kName),
                             .upstream_model = std::string(kDemoEmbedding),
                             .context_window = 8192,
                             .embeddings = true,
                             .owned_by = "chatd"});
  return models;
}

Task<Expected<std::unique_ptr<ChatStream>>> DemoProvider::StreamChat(const ChatRequest& request) {
  const std::string_view model = request.model;
  if (model == kDemoEmbedding) {
    co_return MakeError(ErrorCode::kInvalidArgument, "model 'demo-embedding' is an embedding model, not a chat model",
                        "model");
  }
  if (!IsChatModel(model)) co_return UnknownModel(model);
  if (request.messages.empty())
    co_return MakeError(ErrorCode::kInvalidArgument, "messages must not be empty", "messages");
  if (request.max_tokens && *request.max_tokens < 1) {
    co_return MakeError(ErrorCode::kInvalidArgument, "max_tokens must be at least 1", "max_tokens");
  }
  if (model == kDemoError) co_return MakeError(ErrorCode::kUpstreamUnavailable, "demo-error always fails");

  const bool slow = model == kDemoSlow;
  DemoStream::Plan plan;
  plan.text = BuildReply(request.messages, slow ? kSlowReplyTokens : 0);
  const std::int64_t words = CountWords(plan.text);
  plan.limit = words;
  plan.finish_reason = "stop";
  if (request.max_tokens && *request.max_tokens < words) {
    plan.limit = *request.max_tokens;
    plan.finish_reason = "length";
  }
  if (model == kDemoStall)
    plan.stall_after = std::max<std::int64_t>(0, std::min<std::int64_t>(config_.stall_after_tokens, plan.limit - 1));
  plan.interval = slow ? config_.slow_token_interval : config_.token_interval;
  plan.first_byte_timeout = request.limits.first_byte_timeout.value_or(request.first_byte_timeout);
  plan.idle_timeout = request.limits.idle_timeout.value_or(request.idle_timeout);
  plan.prompt_tokens = PromptTokens(request.messages);

  auto executor = co_await asio::this_coro::executor;
  co_return std::unique_ptr<ChatStream>(std::make_unique<DemoStream>(std::move(executor), std::move(plan)));
}

Task<Expected<Embeddings>> DemoProvider::Embed(const EmbeddingRequest& request) {
  if (request.model != kDemoEmbedding) {
    if (IsChatModel(request.model)) {
      co_return MakeError(ErrorCode::kInvalidArgument, "model '" + request.model + "' is not an embedding model",
                          "model");
    }
    co_return UnknownModel(request.model);
  }
  if (request.input.empty()) co_return MakeError(ErrorCode::kInvalidArgument, "input must not be empty", "input");
  if (request.input.size() > kMaxEmbeddingInputs) {
    co_return MakeError(ErrorCode::kInvalidArgument,
                        "input must have at most " + std::to_string(kMaxEmbeddingInputs) + " items", "input");
  }
  const int dimensions = request.dimensions.value_or(kDefaultDimensions);
  if (dimensions < 1 || dimensions > kMaxDimensions) {
    co_return MakeError(ErrorCode::kInvalidArgument,
                        "dimensions must be between 1 and " + std::to_string(kMaxDimensions), "dimensions");
  }
  Embeddings result;
  result.model = request.model;
  result.vectors.reserve(request.input.size());
  for (const std::string& text : request.input) {
    result.vectors.push_back(EmbedText(text, dimensions));
    result.usage.prompt_tokens += CountWords(text);
  }
  co_return result;
}

}  // namespace chatd::llm
