// Accounting for one completion while it passes through: the usage the upstream reports,
// or an estimate of it from what was generated when the upstream reports none (or the
// stream ended early), the finish reasons, and when the first output arrived. Also decides
// which stream events the client sees: the usage chunk chatd asked for on its own behalf
// is stripped; everything else is forwarded as it came.
//
// Only what accounting needs is read from each event; the event itself is never rebuilt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/usage.hpp"

namespace chatd::gateway {

class CompletionMeter {
 public:
  struct Verdict {
    bool forward = true;  // write the event to the client
    bool done = false;    // `[DONE]`: the stream is complete
    bool error = false;   // the upstream reported an error in the stream (forwarded, then end)
  };

  explicit CompletionMeter(bool client_wants_usage) : client_wants_usage_(client_wants_usage) {}

  /// One event's data (`data:` lines joined) of a streamed completion.
  Verdict OnEvent(std::string_view data);
  /// A whole non-streamed `chat.completion` body.
  void OnBody(std::string_view body);

  /// The reported usage, or the estimate (`estimated` set): `prompt_estimate` for the
  /// prompt, and the generated text's size for the completion.
  TokenUsage Usage(std::int64_t prompt_estimate) const;

  /// Some choice got content, a refusal or a tool call (for the time to first token).
  bool saw_output() const { return generated_bytes_ > 0; }
  /// Some choice ended (a finish_reason arrived).
  bool finished() const { return !finish_reason_.empty(); }
  const std::string& finish_reason() const { return finish_reason_; }

 private:
  bool client_wants_usage_;
  std::optional<TokenUsage> reported_;
  std::size_t generated_bytes_ = 0;
  std::string finish_reason_;
};

}  // namespace chatd::gateway
