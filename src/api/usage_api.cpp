#include "api/usage_api.hpp"

#include "api/guard.hpp"
#include "core/json.hpp"

namespace chatd::api {

using accounts::Principal;
using store::UsageGroupBy;

namespace {

gateway::UsageReportRequest ReadRequest(const http::Request& request, bool admin) {
  gateway::UsageReportRequest read;
  read.from = request.Query("from");
  read.to = request.Query("to");
  read.group_by = request.Query("group_by");
  read.limit = request.Query("limit");
  if (admin) read.user_id = request.Query("user_id");
  return read;
}

void WriteTotals(JsonWriter& json, const store::UsageTotals& totals) {
  json.Field("requests", totals.requests)
      .Field("errors", totals.errors)
      .Field("cache_hits", totals.cache_hits)
      .Field("prompt_tokens", totals.prompt_tokens)
      .Field("completion_tokens", totals.completion_tokens)
      .Field("cached_tokens", totals.cached_tokens)
      .Field("total_tokens", totals.prompt_tokens + totals.completion_tokens)
      .Field("cost_usd", totals.cost);
}

void NullableField(JsonWriter& json, std::string_view key, std::string_view value) {
  json.Key(key);
  if (value.empty())
    json.Null();
  else
    json.String(value);
}

void WriteGroup(JsonWriter& json, UsageGroupBy group_by, const store::UsageGroup& group) {
  json.BeginObject();
  switch (group_by) {
    case UsageGroupBy::kKey:  // null: requests made with an access token
      NullableField(json, "api_key_id", group.value);
      NullableField(json, "name", group.label);
      break;
    case UsageGroupBy::kUser:  // null: a deleted user
      NullableField(json, "user_id", group.value);
      NullableField(json, "email", group.label);
      break;
    case UsageGroupBy::kModel:
      json.Field("model", group.value);
      break;
    case UsageGroupBy::kDay:
      json.Field("day", group.value);
      break;
    case UsageGroupBy::kNone:
      break;
  }
  WriteTotals(json, group.totals);
  json.EndObject();
}

http::Response ReportResponse(const gateway::UsageReportResult& result) {
  JsonWriter json;
  json.BeginObject().Field("object", "usage.report").Field("from", result.from).Field("to", result.to);
  NullableField(json, "group_by", gateway::UsageGroupByName(result.group_by));
  json.Key("totals").BeginObject();
  WriteTotals(json, result.report.totals);
  json.EndObject().Key("data").BeginArray();
  for (const auto& group : result.report.groups) WriteGroup(json, result.group_by, group);
  json.EndArray().Field("has_more", result.report.more_groups).EndObject();
  return http::Response::Json(200, std::move(json).str());
}

}  // namespace

Task<http::Response> UsageApi::Own(http::Request& request, const Principal& caller) {
  const gateway::UsageReportRequest read = ReadRequest(request, false);
  auto result = co_await usage_.UserReport(caller.user_id, read);
  if (!result) co_return ErrorResponse(result.error());
  co_return ReportResponse(*result);
}

Task<http::Response> UsageApi::Admin(http::Request& request, const Principal&) {
  const gateway::UsageReportRequest read = ReadRequest(request, true);
  auto result = co_await usage_.AdminReport(read);
  if (!result) co_return ErrorResponse(result.error());
  co_return ReportResponse(*result);
}

}  // namespace chatd::api
