// Usage reports: what the gateway's usage_events say about a user (GET /usage) or about
// everyone (GET /admin/usage), totalled over a time range and optionally grouped.
// Runs on the caller's I/O thread; reads only.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/expected.hpp"
#include "store/usage_repository.hpp"

namespace chatd::gateway {

/// A report as asked for, from the query string (unvalidated).
struct UsageReportRequest {
  std::optional<std::string> from;      // RFC 3339, inclusive; default: 30 days before `to`
  std::optional<std::string> to;        // RFC 3339, exclusive; default: now
  std::optional<std::string> group_by;  // key | model | day, and for admins user
  std::optional<std::string> user_id;   // admins only: one user's events
  std::optional<std::string> limit;     // groups at most, 1–1000 (default 100)
};

struct UsageReportResult {
  std::string from;  // the range used, RFC 3339
  std::string to;
  store::UsageGroupBy group_by = store::UsageGroupBy::kNone;
  store::UsageReport report;
};

inline constexpr std::size_t kDefaultUsageGroups = 100;
inline constexpr std::size_t kMaxUsageGroups = 1000;

std::string_view UsageGroupByName(store::UsageGroupBy group_by);  // "" for kNone

class UsageService {
 public:
  UsageService(store::UsageRepository& usage, const Clock& clock) : usage_(usage), clock_(clock) {}

  /// The user's own usage (every key of theirs and their sessions). group_by: key,
  /// model or day. kInvalidArgument naming the parameter (from, to, group_by, limit).
  Task<Expected<UsageReportResult>> UserReport(std::string_view user_id, const UsageReportRequest& request);
  /// Everyone's usage, or one user's (user_id); group_by also user. For admins: the
  /// caller checks the role.
  Task<Expected<UsageReportResult>> AdminReport(const UsageReportRequest& request);

 private:
  Expected<UsageReportResult> Prepare(const UsageReportRequest& request, bool admin, store::UsageQuery& query) const;

  store::UsageRepository& usage_;
  const Clock& clock_;
};

}  // namespace chatd::gateway
