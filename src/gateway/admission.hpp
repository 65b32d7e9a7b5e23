// The gate every /v1 request passes before chatd calls an upstream: key limits (requests
// and tokens per minute), allowed models and budgets plug in here.
//
// Protocol, for each request: Admit() once the model is resolved and before any upstream
// call; on success exactly one Settle() with the ticket once the response is over — with
// the real usage, or for a failed or cancelled stream what was generated so far (the
// gateway estimates it when the upstream did not say). A reservation made by Admit (for
// example `estimated_tokens` held against a budget) is released or corrected by Settle,
// so concurrent requests on one key cannot overspend by more than what is in flight.
//
// The default, AdmitAll, admits everything and keeps no state.
#pragma once

#include <cstdint>
#include <string>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "gateway/usage.hpp"

namespace chatd::gateway {

/// Who is calling, as far as admission and usage care.
struct Caller {
  std::string user_id;
  std::string api_key_id;  // empty when authenticated by an access token (a session)
};

/// What Admit granted; handed back to Settle. `id` and `reserved_tokens` are for the
/// implementation (0 from AdmitAll); the gateway only carries the ticket.
struct Ticket {
  std::uint64_t id = 0;
  Caller caller;
  std::string model;  // the public model name
  std::int64_t reserved_tokens = 0;
};

class Admission {
 public:
  virtual ~Admission() = default;

  /// Decides whether `caller` may call `model` now, expecting about `estimated_tokens`
  /// (prompt estimate + max_tokens, or a default when the request sets no maximum).
  /// Runs on the request's I/O thread; may suspend (e.g. a Redis round trip), must not
  /// block. Errors become the response as they are: kRateLimited (429, set
  /// Error::retry_after when known), kPermissionDenied (403, e.g. model not allowed for
  /// the key), kUnavailable (503).
  virtual Task<Expected<Ticket>> Admit(const Caller& caller, const std::string& model,
                                       std::int64_t estimated_tokens) = 0;

  /// Ends the admission: the request used `actual` and ended with `status`. Called once
  /// per ticket, on an I/O thread (not necessarily the one that admitted), also for
  /// failed and cancelled requests. Must not block or suspend: start background work if
  /// it needs any. `cost` is in USD (0 when the model has no prices).
  virtual void Settle(const Ticket& ticket, const TokenUsage& actual, double cost,
                      UsageStatus status) = 0;
};

/// The default: every request is admitted, nothing is counted.
class AdmitAll final : public Admission {
 public:
  Task<Expected<Ticket>> Admit(const Caller& caller, const std::string& model,
                               std::int64_t estimated_tokens) override {
    Ticket ticket;
    ticket.caller = caller;
    ticket.model = model;
    ticket.reserved_tokens = estimated_tokens;
    co_return ticket;
  }
  void Settle(const Ticket&, const TokenUsage&, double, UsageStatus) override {}
};

}  // namespace chatd::gateway
