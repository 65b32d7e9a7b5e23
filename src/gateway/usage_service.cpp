#include "gateway/usage_service.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/time.hpp"

namespace chatd::gateway {

using store::UsageGroupBy;

namespace {

constexpr auto kDefaultRange = std::chrono::hours(24 * 30);
constexpr std::size_t kMaxUserIdLength = 100;

Unexpected Invalid(std::string message, std::string param) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message), std::move(param));
}

}  // namespace

std::string_view UsageGroupByName(UsageGroupBy group_by) {
  switch (group_by) {
    case UsageGroupBy::kKey:
      return "key";
    case UsageGroupBy::kUser:
      return "user";
    case UsageGroupBy::kModel:
      return "model";
    case UsageGroupBy::kDay:
      return "day";
    case UsageGroupBy::kNone:
      break;
  }
  return "";
}

Expected<UsageReportResult> UsageService::Prepare(const UsageReportRequest& request, bool admin,
                                                  store::UsageQuery& query) const {
  UsageReportResult result;
  SystemTime to = clock_.Now();
  if (request.to) {
    const auto parsed = ParseRfc3339(*request.to);
    if (!parsed) return Invalid("to must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z", "to");
    to = *parsed;
  }
  SystemTime from = to - kDefaultRange;
  if (request.from) {
    const auto parsed = ParseRfc3339(*request.from);
    if (!parsed) return Invalid("from must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z", "from");
    from = *parsed;
  }
  if (!(from < to)) return Invalid("from must be before to", "from");
  result.from = FormatRfc3339(from);
  result.to = FormatRfc3339(to);

  if (request.group_by) {
    const std::string& name = *request.group_by;
    if (name == "key") {
      result.group_by = UsageGroupBy::kKey;
    } else if (name == "model") {
      result.group_by = UsageGroupBy::kModel;
    } else if (name == "day") {
      result.group_by = UsageGroupBy::kDay;
    } else if (name == "user" && admin) {
      result.group_by = UsageGroupBy::kUser;
    } else {
      return Invalid(admin ? "group_by must be key, user, model or day" : "group_by must be key, model or day",
                     "group_by");
    }
  }

  std::size_t limit = kDefaultUsageGroups;
  if (request.limit) {
    const std::string& text = *request.limit;
    std::size_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > kMaxUsageGroups) {
      return Invalid(fmt::format("limit must be an integer from 1 to {}", kMaxUsageGroups), "limit");
    }
    limit = value;
  }

  query.from = result.from;
  query.to = result.to;
  query.group_by = result.group_by;
  query.max_groups = limit;
  if (admin && request.user_id) {
    if (request.user_id->empty() || request.user_id->size() > kMaxUserIdLength) {
      return Invalid("user_id must be a user's id", "user_id");
    }
    query.user_id = *request.user_id;
    query.all_users = false;
  } else if (admin) {
    query.all_users = true;
  }
  return result;
}

Task<Expected<UsageReportResult>> UsageService::UserReport(std::string_view user_id,
                                                           const UsageReportRequest& request) {
  store::UsageQuery query;
  auto result = Prepare(request, false, query);
  if (!result) co_return Unexpected{std::move(result).error()};
  query.user_id = std::string(user_id);
  query.all_users = false;
  auto report = co_await usage_.Report(query);
  if (!report) co_return Unexpected{std::move(report).error()};
  result->report = std::move(*report);
  co_return std::move(*result);
}

Task<Expected<UsageReportResult>> UsageService::AdminReport(const UsageReportRequest& request) {
  store::UsageQuery query;
  auto result = Prepare(request, true, query);
  if (!result) co_return Unexpected{std::move(result).error()};
  auto report = co_await usage_.Report(query);
  if (!report) co_return Unexpected{std::move(report).error()};
  result->report = std::move(*report);
  co_return std::move(*result);
}

}  // namespace chatd::gateway
