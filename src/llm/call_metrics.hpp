// The metrics of model calls, whoever makes them (the chat turn, the gateway): one set of
// families, registered once by the composition root and shared, so a dashboard sees every
// call to a model in the same series.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/metrics.hpp"

namespace chatd::llm {

struct CallMetrics {
  explicit CallMetrics(metrics::Registry& registry);

  /// One finished call: `status` is "ok", "error" or "cancelled"; tokens as counted
  /// (reported or estimated). Thread-safe.
  void Record(std::string_view provider, std::string_view model, std::string_view status, double seconds,
              std::int64_t prompt_tokens, std::int64_t completion_tokens);

  metrics::Family<metrics::Counter>& requests;      // llm_requests_total{provider,model,status}
  metrics::Family<metrics::Histogram>& duration;    // llm_request_duration_seconds{provider,model}
  metrics::Family<metrics::Histogram>& first_token; // llm_time_to_first_token_seconds{provider,model}
  metrics::Family<metrics::Counter>& tokens;        // llm_tokens_total{type}
  metrics::Counter& prompt_tokens;                  // llm_tokens_total{type="prompt"}
  metrics::Counter& completion_tokens;              // llm_tokens_total{type="completion"}
};

}  // namespace chatd::llm
