#include "llm/call_metrics.hpp"

#include <algorithm>
#include <string>

namespace chatd::llm {

CallMetrics::CallMetrics(metrics::Registry& registry)
    : requests(registry.AddCounter("llm_requests_total", "Model calls by how they ended (ok, error, cancelled).",
                                   {"provider", "model", "status"})),
      duration(registry.AddHistogram("llm_request_duration_seconds", "Model calls, from the request to the last token.",
                                     {"provider", "model"},
                                     {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600})),
      first_token(registry.AddHistogram("llm_time_to_first_token_seconds",
                                        "From the model request to its first token.", {"provider", "model"},
                                        {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})),
      tokens(registry.AddCounter("llm_tokens_total", "Tokens the models read and wrote.", {"type"})),
      prompt_tokens(tokens.WithLabels({"prompt"})),
      completion_tokens(tokens.WithLabels({"completion"})) {}

void CallMetrics::Record(std::string_view provider, std::string_view model, std::string_view status, double seconds,
                         std::int64_t prompt, std::int64_t completion) {
  requests.WithLabels({provider, model, status}).Inc();
  duration.WithLabels({provider, model}).Observe(seconds);
  prompt_tokens.Inc(static_cast<std::uint64_t>(std::max<std::int64_t>(0, prompt)));
  completion_tokens.Inc(static_cast<std::uint64_t>(std::max<std::int64_t>(0, completion)));
}

}  // namespace chatd::llm
